//! A stand-in for a vendor's SDK: a crate of its own, as a real one is, so
//! that neither the macros nor the audit read its body. Its one call blocks
//! for 150 ms; the showcase catches it at run time instead.

use std::time::Duration;

/// Today's rate for `currency`, fetched the slow, synchronous way.
pub fn exchange_rate(currency: &str) -> String {
    std::thread::sleep(Duration::from_millis(150));
    format!("1 EUR = 1.08 {currency}\n")
}
