//! A re-export: `util::sfs` is `std::fs`.

pub use std::fs as sfs;
