//! The clock of the lanes' timings.

use std::sync::LazyLock;

/// The CPU's time-stamp counter where it is reliable (about 10 ns a read,
/// against 30 for `Instant::now` on our virtual machines), the monotonic
/// clock elsewhere. Readings are raw ticks: `CLOCK.delta(a, b)` turns two
/// into a duration.
pub(crate) static CLOCK: LazyLock<quanta::Clock> = LazyLock::new(quanta::Clock::new);
