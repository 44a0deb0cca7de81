use std::panic::{self, AssertUnwindSafe};
use std::thread;

use tokio::sync::oneshot;

use super::admit::{Admitted, admit};
use super::{Body, Site, Value, erase, unerase};
use crate::config::{Config, lanes};
use crate::stats::Queued;

/// Runs `f` on the CPU lane's rayon pool once the lane admits it, and awaits
/// its result.
pub async fn run_cpu<F, R>(site: &'static Site, f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    unerase(run_erased(site, erase(f)).await)
}

async fn run_erased(site: &'static Site, body: Body) -> Value {
    crate::heartbeat::ensure_running();
    let lanes = lanes();
    let queued = site.queue();
    let admitted = admit(site, &lanes.cpu_admission, lanes.settings.cpu_max_wait).await;
    let (job, outcome) = bridge(site, (queued, admitted), body);
    lanes.cpu.spawn(job);
    outcome.get().await
}

/// Splits `body` into a job for a pool thread and the future of its
/// outcome.
///
/// The job skips `body` when the awaiting future is already gone (the
/// client went away before a thread was free), and catches a panic so that
/// it resumes in the awaiting task instead of killing the pool thread.
/// `body` runs inside the caller's tracing span.
///
/// The call's place in the lane travels back with its result and is given
/// back by the caller as it takes the result: a call waiting for a place is
/// then woken on the caller's tokio worker instead of from the pool thread,
/// one cross-thread wake a call fewer. A call whose caller has gone gives
/// its place back on the pool thread, once `body` has run or been skipped.
fn bridge(
    site: &'static Site,
    (queued, admitted): (Queued, Admitted),
    body: Body,
) -> (impl FnOnce() + Send + 'static, Outcome) {
    let (sender, receiver) = oneshot::channel();
    let detached = crate::detached::hold();
    let span = tracing::Span::current();
    let job = move || {
        let _detached = detached;
        if sender.is_closed() {
            return;
        }
        let _span = span.entered();
        let mut running = queued.start();
        let result = panic::catch_unwind(AssertUnwindSafe(body));
        if result.is_err() {
            running.panicked();
        }
        // The caller may have gone while `body` ran; the result is then
        // unwanted. It is sent before the bookkeeping: the caller waits.
        let _ = sender.send((result, admitted));
        drop(running);
    };
    (job, Outcome { site, receiver })
}

struct Outcome {
    site: &'static Site,
    receiver: oneshot::Receiver<(thread::Result<Value>, Admitted)>,
}

impl Outcome {
    /// The value of the body, or its panic resumed here, as if the body had
    /// run inline.
    async fn get(self) -> Value {
        match self.receiver.await {
            Ok((Ok(value), _admitted)) => value,
            Ok((Err(payload), admitted)) => {
                drop(admitted);
                panic::resume_unwind(payload)
            }
            Err(_) => panic!(
                "lanes: `{}` was dropped before it ran, because the CPU pool shut down",
                self.site.name
            ),
        }
    }
}

pub(crate) fn pool(config: &Config) -> rayon::ThreadPool {
    let nice = config.cpu_nice;
    rayon::ThreadPoolBuilder::new()
        .num_threads(config.cpu_threads)
        .thread_name(|i| format!("lanes-cpu-{i}"))
        .start_handler(move |_| lower_priority(nice))
        .build()
        .expect("the CPU lane's threads could not be started")
}

/// Makes the calling thread `steps` nicer than it is. Linux schedules
/// threads individually, so this leaves the tokio workers at full priority.
#[cfg(target_os = "linux")]
fn lower_priority(steps: i32) {
    if steps == 0 {
        return;
    }
    // SAFETY: plain syscalls about the calling thread, by its own id.
    // `getpriority` may return -1 as a valid nice value, so errno tells
    // failure apart.
    let failed = unsafe {
        let tid = libc::gettid() as libc::id_t;
        *libc::__errno_location() = 0;
        let current = libc::getpriority(libc::PRIO_PROCESS, tid);
        if current == -1 && *libc::__errno_location() != 0 {
            true
        } else {
            libc::setpriority(libc::PRIO_PROCESS, tid, (current + steps).min(19)) != 0
        }
    };
    if failed {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "lanes: could not lower the priority of a CPU-lane thread; it competes with the tokio workers at equal priority"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_steps: i32) {}
