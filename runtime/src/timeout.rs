//! [`TimedOut`], what a lane fn's call past its `timeout = "2s"` returns
//! outside a request (the request layers answer `504` instead; see
//! `shed::within`).

use std::fmt;
use std::time::Duration;

/// A lane call that did not finish within its `timeout`. A fn with a
/// `timeout` returns `Result<T, E>` with `E: From<TimedOut>`; `lanes`
/// provides the conversion into `std::io::Error` (kind `TimedOut`), and
/// `Box<dyn Error + Send + Sync>`, `anyhow::Error` and the like take it as
/// any error.
///
/// A `#[blocking]` or `#[cpu_bound]` body cannot be stopped from outside:
/// past its timeout the caller gets this error at once, but the body runs
/// on, and keeps its place in the lane, until it returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimedOut {
    function: &'static str,
    after: Duration,
}

impl TimedOut {
    pub(crate) fn new(function: &'static str, after: Duration) -> TimedOut {
        TimedOut { function, after }
    }

    /// The fn that timed out, `module::name`.
    pub fn function(&self) -> &'static str {
        self.function
    }

    /// Its timeout.
    pub fn after(&self) -> Duration {
        self.after
    }
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` did not finish within its timeout of {}",
            self.function,
            human(self.after)
        )
    }
}

impl std::error::Error for TimedOut {}

/// `504 Gateway Timeout` naming the fn and its timeout, so that
/// `Result<T, lanes::TimedOut>` can be a handler's return type as it is.
impl axum::response::IntoResponse for TimedOut {
    fn into_response(self) -> axum::response::Response {
        (axum::http::StatusCode::GATEWAY_TIMEOUT, format!("{self}\n")).into_response()
    }
}

impl From<TimedOut> for std::io::Error {
    fn from(timed_out: TimedOut) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, timed_out)
    }
}

/// `2 s`, `250 ms`, `1.5 s`.
pub(crate) fn human(after: Duration) -> String {
    if after < Duration::from_secs(1) {
        format!("{} ms", after.as_millis())
    } else {
        format!("{} s", after.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_which_fn_and_how_long() {
        let timed_out = TimedOut {
            function: "app::report",
            after: Duration::from_millis(2500),
        };
        assert_eq!(
            timed_out.to_string(),
            "`app::report` did not finish within its timeout of 2.5 s"
        );
        let io = std::io::Error::from(timed_out);
        assert_eq!(io.kind(), std::io::ErrorKind::TimedOut);
    }
}
