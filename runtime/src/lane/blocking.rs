use std::panic;

use tokio::task::JoinHandle;

use super::admit::admit;
use super::{Body, Site, Value, erase, unerase};
use crate::config::lanes;

/// Runs `f` on tokio's blocking pool once the lane's bulkhead and the fn's
/// own limit admit it, and awaits its result.
pub async fn run_blocking<F, R>(site: &'static Site, f: F) -> R
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
    let admitted = admit(site, &lanes.blocking, lanes.settings.blocking_max_wait).await;
    let detached = crate::detached::hold();
    // The body logs inside the caller's span (a request's, an
    // `#[instrument]`'s), as it would have inline.
    let span = tracing::Span::current();
    // The places travel with the call: a caller that goes away does not free
    // a slot while its call still runs. They come back with the value and
    // are given back here, so that a call waiting for a place is woken on
    // this worker rather than from the pool thread.
    let task = AbortOnDrop(tokio::task::spawn_blocking(move || {
        let _detached = detached;
        let _running = queued.start();
        let _span = span.entered();
        (body(), admitted)
    }));
    match task.await {
        Ok((value, _admitted)) => value,
        // tokio caught the panic on the pool thread; it resumes here.
        Err(error) if error.is_panic() => panic::resume_unwind(error.into_panic()),
        Err(_) => panic!(
            "lanes: `{}` was dropped before it ran, because the runtime is shutting down",
            site.name
        ),
    }
}

/// A task's handle that aborts the task when dropped: a blocking task not
/// yet picked up by a thread is then skipped (one already running
/// finishes), and an async task stops at its next `.await`.
pub(crate) struct AbortOnDrop<R>(pub(crate) JoinHandle<R>);

impl<R> std::future::Future for AbortOnDrop<R> {
    type Output = Result<R, tokio::task::JoinError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0).poll(cx)
    }
}

impl<R> Drop for AbortOnDrop<R> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
