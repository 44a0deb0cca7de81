use std::fmt;
use std::num::NonZeroUsize;
use std::sync::OnceLock;
use std::time::Duration;

use crate::lane::Lanes;

/// How the lanes run. Everything has a default and the lanes start lazily on
/// first use, so most services never touch this; the ones that do call
/// [`Config::install`] before serving.
///
/// ```
/// use std::time::Duration;
///
/// lanes::Config::new()
///     .cpu_threads(4)
///     .cpu_nice(10)
///     .cpu_admission(32)
///     .cpu_max_wait(Duration::from_millis(500))
///     .blocking_limit(64)
///     .slow_poll_threshold(Some(Duration::from_millis(5)))
///     .install()
///     .expect("installed before any lane ran");
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) cpu_threads: usize,
    pub(crate) cpu_nice: i32,
    pub(crate) cpu_admission: Option<usize>,
    pub(crate) cpu_max_wait: Duration,
    pub(crate) blocking_limit: usize,
    pub(crate) blocking_max_wait: Duration,
    pub(crate) retry_after: Duration,
    pub(crate) slow_poll_threshold: Option<Duration>,
    pub(crate) watchdog_threshold: Option<Duration>,
    pub(crate) quarantine: Option<Quarantine>,
    pub(crate) job_store: Option<crate::jobs::Store>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cpu_threads: std::thread::available_parallelism().map_or(1, NonZeroUsize::get),
            cpu_nice: 10,
            cpu_admission: None,
            cpu_max_wait: Duration::from_secs(1),
            blocking_limit: 512,
            blocking_max_wait: Duration::from_secs(1),
            retry_after: Duration::from_secs(1),
            slow_poll_threshold: Some(Duration::from_millis(10)),
            watchdog_threshold: Some(Duration::from_millis(100)),
            quarantine: None,
            job_store: None,
        }
    }
}

impl Config {
    /// The defaults, as each setting below states them.
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

    /// The CPU lane's admission bound: how many calls may be running or
    /// queued in the pool at once. Further calls wait for a place, up to
    /// [`cpu_max_wait`](Self::cpu_max_wait). Default: 4 per CPU thread.
    pub fn cpu_admission(mut self, calls: usize) -> Self {
        self.cpu_admission = Some(calls);
        self
    }

    /// How long a request's `#[cpu_bound]` call waits for admission before
    /// it is shed with `503 Service Unavailable` (under [`ShedLayer`]).
    /// Default: 1 s.
    ///
    /// [`ShedLayer`]: crate::ShedLayer
    pub fn cpu_max_wait(mut self, wait: Duration) -> Self {
        self.cpu_max_wait = wait;
        self
    }

    /// The blocking lane's admission bound: how many `#[blocking]` calls may
    /// run at once across all handlers (the lane's bulkhead). Default: 512,
    /// tokio's default blocking-pool size. Per-handler limits come from
    /// `#[blocking(limit = N)]`.
    pub fn blocking_limit(mut self, calls: usize) -> Self {
        self.blocking_limit = calls;
        self
    }

    /// How long a request's `#[blocking]` call waits for the lane's and its
    /// own limit before it is shed with `503` (under [`ShedLayer`]).
    /// Default: 1 s.
    ///
    /// [`ShedLayer`]: crate::ShedLayer
    pub fn blocking_max_wait(mut self, wait: Duration) -> Self {
        self.blocking_max_wait = wait;
        self
    }

    /// The `Retry-After` a shed request is answered with, in whole seconds
    /// (rounded up). Default: 1 s.
    pub fn retry_after(mut self, after: Duration) -> Self {
        self.retry_after = after;
        self
    }

    /// A poll of an `#[io_bound]` fn longer than this is logged as a
    /// `tracing` warning naming the fn, and counted. `None` turns the poll
    /// timer off. Default: 10 ms.
    pub fn slow_poll_threshold(mut self, threshold: Option<Duration>) -> Self {
        self.slow_poll_threshold = threshold;
        self
    }

    /// A watchdog thread reports an `#[io_bound]` fn whose poll has held a
    /// tokio worker for longer than this, while it is still stuck. `None`
    /// turns the watchdog off. Default: 100 ms.
    pub fn watchdog_threshold(mut self, threshold: Option<Duration>) -> Self {
        self.watchdog_threshold = threshold;
        self
    }

    /// Moves a route under [`Watch`](crate::Watch) that keeps blocking off
    /// the event loop, so that the rest of the service stays responsive
    /// while the bug is fixed. Off by default: quarantine hides a bug, and
    /// is a choice to make knowingly.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// lanes::Config::new()
    ///     .quarantine(Some(lanes::Quarantine::new().after(3).within(Duration::from_secs(60))))
    ///     .install()
    ///     .expect("installed before any lane ran");
    /// ```
    pub fn quarantine(mut self, policy: Option<Quarantine>) -> Self {
        self.quarantine = policy;
        self
    }

    /// Where `#[background]` fns enqueue and [`jobs::start_workers`]
    /// takes jobs from. Default: SQLite in
    /// [`jobs::DEFAULT_SQLITE_FILE`], in the working directory.
    ///
    /// [`jobs::start_workers`]: crate::jobs::start_workers
    /// [`jobs::DEFAULT_SQLITE_FILE`]: crate::jobs::DEFAULT_SQLITE_FILE
    pub fn job_store(mut self, store: crate::jobs::Store) -> Self {
        self.job_store = Some(store);
        self
    }

    pub(crate) fn cpu_admission_bound(&self) -> usize {
        self.cpu_admission.unwrap_or(self.cpu_threads * 4)
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
        if self.cpu_admission_bound() < self.cpu_threads {
            return Err(ConfigError::Invalid(
                "`cpu_admission` must be at least `cpu_threads`, or threads stay idle",
            ));
        }
        if self.blocking_limit == 0 {
            return Err(ConfigError::Invalid("`blocking_limit` must be at least 1"));
        }
        let zero = Some(Duration::ZERO);
        if self.slow_poll_threshold == zero || self.watchdog_threshold == zero {
            return Err(ConfigError::Invalid(
                "a zero threshold would report every poll; use `None` to turn a monitor off",
            ));
        }
        if let Some(quarantine) = &self.quarantine {
            if self.slow_poll_threshold.is_none() {
                return Err(ConfigError::Invalid(
                    "`quarantine` acts on slow polls; it needs a `slow_poll_threshold`",
                ));
            }
            if quarantine.after == 0 || quarantine.limit == 0 || quarantine.clean_probes == 0 {
                return Err(ConfigError::Invalid(
                    "`Quarantine`'s `after`, `limit` and `clean_probes` must be at least 1",
                ));
            }
        }
        if LANES.get().is_some() {
            return Err(ConfigError::AlreadyStarted);
        }
        LANES
            .set(Lanes::start(self))
            .map_err(|_| ConfigError::AlreadyStarted)
    }
}

/// When a route under [`Watch`](crate::Watch) is quarantined, and how it
/// comes back, for [`Config::quarantine`].
///
/// A route whose calls had a slow poll (longer than
/// [`Config::slow_poll_threshold`]) `after` times within `within` is
/// quarantined: its next calls run their future on a blocking-pool thread
/// (the runtime handle's `block_on`), at most `limit` at once and within
/// [`Config::blocking_limit`]; further calls wait for a place, up to
/// [`Config::blocking_max_wait`], and are then shed with `503`. One call
/// every `probe_every` runs on the event loop instead, as a probe; after
/// `clean_probes` probes in a row with no slow poll, the route is back on
/// the event loop. Every change is logged, set in the
/// `lanes_route_quarantined` gauge, and shown in [`stats()`](crate::stats).
///
/// A quarantined call that its client abandons runs to its end: a future
/// on another thread's `block_on` is not dropped from outside.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quarantine {
    pub(crate) after: u32,
    pub(crate) within: Duration,
    pub(crate) limit: usize,
    pub(crate) probe_every: Duration,
    pub(crate) clean_probes: u32,
}

impl Default for Quarantine {
    fn default() -> Self {
        Quarantine {
            after: 3,
            within: Duration::from_secs(60),
            limit: 32,
            probe_every: Duration::from_secs(10),
            clean_probes: 3,
        }
    }
}

impl Quarantine {
    /// 3 catches within 60 s; 32 calls at once; a probe every 10 s; 3
    /// clean probes to come back.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many calls with a slow poll quarantine a route. Default: 3.
    pub fn after(mut self, calls: u32) -> Self {
        self.after = calls;
        self
    }

    /// The window those calls must fall in. Default: 60 s.
    pub fn within(mut self, window: Duration) -> Self {
        self.within = window;
        self
    }

    /// How many calls of a quarantined route run at once. Default: 32.
    pub fn limit(mut self, calls: usize) -> Self {
        self.limit = calls;
        self
    }

    /// How often one call of a quarantined route runs on the event loop to
    /// see whether it still blocks. Default: 10 s.
    pub fn probe_every(mut self, every: Duration) -> Self {
        self.probe_every = every;
        self
    }

    /// How many probes in a row must run with no slow poll before the route
    /// is back on the event loop. Default: 3.
    pub fn clean_probes(mut self, probes: u32) -> Self {
        self.clean_probes = probes;
        self
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
