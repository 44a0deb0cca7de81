//! The lanes, their admission bounds, and the site each lane fn declares.

pub(crate) mod admit;
pub(crate) mod blocking;
pub(crate) mod cpu;
pub(crate) mod places;

use std::any::Any;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::config::Config;
use crate::stats::SiteStats;

/// The pools behind the lanes.
#[derive(Debug)]
pub(crate) struct Lanes {
    pub(crate) cpu: rayon::ThreadPool,
    /// The CPU lane's admission bound: calls running or queued in the pool.
    pub(crate) cpu_admission: places::Places,
    /// The blocking lane's bulkhead: calls running on tokio's blocking pool.
    pub(crate) blocking: places::Places,
    pub(crate) settings: Settings,
    pub(crate) monitors: Monitors,
    /// Set by [`Config::job_store`]; `None` means the SQLite default.
    pub(crate) job_store: Option<crate::jobs::Store>,
}

/// What the lanes read on their hot paths, fixed at start.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) cpu_max_wait: Duration,
    pub(crate) blocking_max_wait: Duration,
    pub(crate) retry_after: Duration,
}

/// Which `#[io_bound]` monitors run, fixed at start.
#[derive(Debug)]
pub(crate) struct Monitors {
    pub(crate) slow_poll_threshold: Option<Duration>,
    /// Whether the watchdog thread runs, so polls publish themselves.
    pub(crate) watchdog: bool,
    pub(crate) quarantine: Option<crate::config::Quarantine>,
}

impl Lanes {
    pub(crate) fn start(config: Config) -> Lanes {
        let watchdog = config
            .watchdog_threshold
            .is_some_and(crate::watchdog::start);
        Lanes {
            cpu: cpu::pool(&config),
            cpu_admission: places::Places::new(config.cpu_admission_bound()),
            blocking: places::Places::new(config.blocking_limit),
            settings: Settings {
                cpu_max_wait: config.cpu_max_wait,
                blocking_max_wait: config.blocking_max_wait,
                retry_after: config.retry_after,
            },
            monitors: Monitors {
                slow_poll_threshold: config.slow_poll_threshold,
                watchdog,
                quarantine: config.quarantine,
            },
            job_store: config.job_store,
        }
    }
}

/// A pool-lane body with its type erased, and what it returns. The lanes
/// run every fn's body through these, so that their machinery (the pool's
/// job, the channel back, the panic catch) is compiled once for the
/// program rather than once for each fn: two small allocations a call, far
/// below the cost of the thread hand-off.
pub(crate) type Body = Box<dyn FnOnce() -> Value + Send>;
pub(crate) type Value = Box<dyn Any + Send>;

pub(crate) fn erase<F, R>(f: F) -> Body
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    Box::new(move || Box::new(f()) as Value)
}

/// The value an erased body of `R` returned.
pub(crate) fn unerase<R: 'static>(value: Value) -> R {
    *value
        .downcast()
        .expect("an erased body returns the value of its own type")
}

/// The lane a fn runs on, as metrics and stats name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Lane {
    /// `#[io_bound]`: the tokio worker the call was polled on.
    IoBound,
    /// `#[blocking]` and [`run_blocking`](crate::run_blocking): tokio's
    /// blocking pool, behind [`Config::blocking_limit`](crate::Config::blocking_limit).
    Blocking,
    /// `#[cpu_bound]` and [`run_cpu`](crate::run_cpu): the rayon pool of
    /// [`Config::cpu_threads`](crate::Config::cpu_threads).
    CpuBound,
}

impl Lane {
    /// The name in the metrics' `lane` label and in [`stats()`](crate::stats)'s
    /// JSON: `io_bound`, `blocking` or `cpu_bound`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lane::IoBound => "io_bound",
            Lane::Blocking => "blocking",
            Lane::CpuBound => "cpu_bound",
        }
    }
}

/// One lane fn, as a static in its expansion, or one route under
/// [`Watch`](crate::Watch): its name for diagnostics and metrics, its lane,
/// its own concurrency limit, and its counters.
#[derive(Debug)]
pub struct Site {
    pub(crate) name: &'static str,
    pub(crate) lane: Lane,
    /// A route (`GET /users/{id}`) rather than a fn.
    pub(crate) route: bool,
    pub(crate) limit: Option<Semaphore>,
    pub(crate) stats: SiteStats,
}

impl Site {
    /// An `#[io_bound]` fn named `name` (`module::fn`).
    pub const fn io_bound(name: &'static str) -> Site {
        Site::new(name, Lane::IoBound, None)
    }

    /// A `#[blocking]` fn, with its `limit = N` if it has one.
    pub const fn blocking(name: &'static str, limit: Option<usize>) -> Site {
        let limit = match limit {
            Some(permits) => Some(Semaphore::const_new(permits)),
            None => None,
        };
        Site::new(name, Lane::Blocking, limit)
    }

    /// A `#[cpu_bound]` fn.
    pub const fn cpu_bound(name: &'static str) -> Site {
        Site::new(name, Lane::CpuBound, None)
    }

    /// A route's site; `limit` bounds its calls while it is quarantined.
    pub(crate) fn route(name: &'static str, limit: usize) -> Site {
        Site {
            route: true,
            ..Site::new(name, Lane::IoBound, Some(Semaphore::new(limit)))
        }
    }

    const fn new(name: &'static str, lane: Lane, limit: Option<Semaphore>) -> Site {
        Site {
            name,
            lane,
            route: false,
            limit,
            stats: SiteStats::new(),
        }
    }
}
