//! The lanes that run sync code off the tokio workers.

pub(crate) mod blocking;
pub(crate) mod cpu;

use tokio::sync::Semaphore;

use crate::config::Config;

/// The pools behind the lanes.
#[derive(Debug)]
pub(crate) struct Lanes {
    pub(crate) cpu: rayon::ThreadPool,
    /// The blocking lane's bulkhead: calls running on tokio's blocking pool.
    pub(crate) blocking: Semaphore,
}

impl Lanes {
    pub(crate) fn start(config: Config) -> Lanes {
        Lanes {
            cpu: cpu::pool(&config),
            blocking: Semaphore::new(config.blocking_limit),
        }
    }
}

/// One lane fn, as a static in its expansion: its name for diagnostics and
/// its own concurrency limit.
#[derive(Debug)]
pub struct Site {
    pub(crate) name: &'static str,
    pub(crate) limit: Option<Semaphore>,
}

impl Site {
    pub const fn new(name: &'static str, limit: Option<usize>) -> Site {
        let limit = match limit {
            Some(permits) => Some(Semaphore::const_new(permits)),
            None => None,
        };
        Site { name, limit }
    }
}
