use std::panic;

use tokio::task::JoinHandle;

use super::Site;
use crate::config::lanes;

/// Runs `f` on tokio's blocking pool behind the lane's bulkhead and the fn's
/// own limit, and awaits its result.
pub async fn run_blocking<F, R>(site: &'static Site, f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    // The semaphores are never closed, so `acquire` cannot fail.
    let own_permit = match &site.limit {
        Some(limit) => Some(
            limit
                .acquire()
                .await
                .expect("lane semaphores are never closed"),
        ),
        None => None,
    };
    let lane_permit = lanes()
        .blocking
        .acquire()
        .await
        .expect("lane semaphores are never closed");
    // The permits travel with the call: a caller that goes away does not free
    // a slot while its call still runs.
    let task = AbortOnDrop(tokio::task::spawn_blocking(move || {
        let _permits = (own_permit, lane_permit);
        f()
    }));
    match task.join().await {
        Ok(value) => value,
        // tokio caught the panic on the pool thread; it resumes here.
        Err(error) if error.is_panic() => panic::resume_unwind(error.into_panic()),
        Err(_) => panic!(
            "lanes: `{}` was dropped before it ran, because the runtime is shutting down",
            site.name
        ),
    }
}

/// Aborts the blocking task when the caller's future is dropped: tokio then
/// skips the task if no thread has picked it up yet, and lets it finish
/// otherwise.
struct AbortOnDrop<R>(JoinHandle<R>);

impl<R> AbortOnDrop<R> {
    async fn join(mut self) -> Result<R, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<R> Drop for AbortOnDrop<R> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
