//! The lanes that run sync code off the tokio workers, and the bridge that
//! brings each result (or panic) back to the awaiting task.

pub(crate) mod blocking;
pub(crate) mod cpu;

use std::panic::{self, AssertUnwindSafe};
use std::thread;

use tokio::sync::{Semaphore, oneshot};

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
    name: &'static str,
    limit: Option<Semaphore>,
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

/// Splits `f` into a job for a pool thread and the future of its outcome.
///
/// The job skips `f` when the awaiting future is already gone (the client
/// went away before a thread was free), and catches a panic so that it
/// resumes in the awaiting task instead of killing the pool thread.
fn bridge<F, R>(site: &'static Site, f: F) -> (impl FnOnce() + Send + 'static, Outcome<R>)
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let (sender, receiver) = oneshot::channel();
    let job = move || {
        if sender.is_closed() {
            return;
        }
        let result = panic::catch_unwind(AssertUnwindSafe(f));
        // The caller may have gone while `f` ran; the result is then unwanted.
        let _ = sender.send(result);
    };
    (job, Outcome { site, receiver })
}

struct Outcome<R> {
    site: &'static Site,
    receiver: oneshot::Receiver<thread::Result<R>>,
}

impl<R> Outcome<R> {
    /// The value of `f`, or its panic resumed here, as if `f` had run inline.
    async fn get(self) -> R {
        match self.receiver.await {
            Ok(Ok(value)) => value,
            Ok(Err(payload)) => panic::resume_unwind(payload),
            Err(_) => panic!(
                "lanes: `{}` was dropped before it ran, because its pool shut down",
                self.site.name
            ),
        }
    }
}
