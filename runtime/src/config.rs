use std::fmt;
use std::num::NonZeroUsize;
use std::sync::OnceLock;

use crate::lane::Lanes;

/// How the lanes run. Everything has a default and the lanes start lazily on
/// first use, so most services never touch this; the ones that do call
/// [`Config::install`] before serving.
///
/// ```
/// lanes::Config::new()
///     .cpu_threads(4)
///     .cpu_nice(10)
///     .blocking_limit(64)
///     .install()
///     .expect("installed before any lane ran");
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) cpu_threads: usize,
    pub(crate) cpu_nice: i32,
    pub(crate) blocking_limit: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cpu_threads: std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
            cpu_nice: 10,
            blocking_limit: 512,
        }
    }
}

impl Config {
    pub fn new() -> Self {
        Self::default()
    }

    /// Threads of the `#[cpu_bound]` rayon pool. Default: the number of
    /// cores.
    pub fn cpu_threads(mut self, threads: usize) -> Self {
        self.cpu_threads = threads;
        self
    }

    /// How many steps of `nice` below the rest of the process the CPU threads
    /// run (Linux; 0 to 19), so that the tokio workers win the cores when CPU
    /// work saturates them and I/O routes stay responsive. Default: 10.
    pub fn cpu_nice(mut self, steps: i32) -> Self {
        self.cpu_nice = steps;
        self
    }

    /// How many `#[blocking]` calls may run at once across all handlers (the
    /// lane's bulkhead); further calls wait their turn. Default: 512, tokio's
    /// default blocking-pool size. Per-handler limits come from
    /// `#[blocking(limit = N)]`.
    pub fn blocking_limit(mut self, calls: usize) -> Self {
        self.blocking_limit = calls;
        self
    }

    /// Starts the lanes with this configuration.
    ///
    /// Fails if a setting is out of range, or if the lanes have already
    /// started (a lane fn ran, or `install` was called before).
    pub fn install(self) -> Result<(), ConfigError> {
        if self.cpu_threads == 0 {
            return Err(ConfigError::Invalid("`cpu_threads` must be at least 1"));
        }
        if !(0..=19).contains(&self.cpu_nice) {
            return Err(ConfigError::Invalid("`cpu_nice` must be between 0 and 19"));
        }
        if self.blocking_limit == 0 {
            return Err(ConfigError::Invalid("`blocking_limit` must be at least 1"));
        }
        if LANES.get().is_some() {
            return Err(ConfigError::AlreadyStarted);
        }
        LANES
            .set(Lanes::start(self))
            .map_err(|_| ConfigError::AlreadyStarted)
    }
}

/// Why [`Config::install`] refused a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The lanes are already running with another configuration.
    AlreadyStarted,
    /// A setting is out of range.
    Invalid(&'static str),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::AlreadyStarted => f.write_str(
                "the lanes have already started; call `lanes::Config::install` before any lane fn runs",
            ),
            ConfigError::Invalid(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ConfigError {}

static LANES: OnceLock<Lanes> = OnceLock::new();

/// The running lanes, started with the default configuration on first use.
pub(crate) fn lanes() -> &'static Lanes {
    LANES.get_or_init(|| Lanes::start(Config::default()))
}
