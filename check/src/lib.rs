//! The rule engine behind `lanes`: what counts as a blocking call, found in
//! a fn body by path and shape, with names resolved through the crate model
//! and calls followed into the crate's own sync helpers.
//!
//! Shared by the `lanes` attribute macros and by `cargo lanes audit`, so the
//! two always agree. The rules are DESIGN.md's "What counts as blocking";
//! projects add their own in `lanes.toml` ([`Config`]).
//!
//! # The built-in rules
//!
//! [`BUILTIN`], as [`rules_markdown`] renders it:
//!
#![doc = include_str!("../RULES.md")]
#![warn(missing_docs)]

mod config;
mod escape;
mod finding;
mod flow;
mod model;
mod resolve;
mod rules;
mod visit;

pub use config::{Config, ConfigError, CustomRule, DIR_ENV, FILE_NAME};
pub use escape::{is_allow_attr, strip_allow_attrs};
pub use finding::{Finding, Scope, Severity};
pub use model::{LoadError, Model, Package, Place, Root, SourceFile, display_path, for_macro};
pub use rules::{
    BUILTIN, GUARD_ACROSS_AWAIT, Kind, Matcher, Origin, Rule, markdown as rules_markdown,
};
pub use visit::{awaits, check, scan};

#[cfg(test)]
mod tests;
