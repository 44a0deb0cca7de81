//! Pool work that outlives its caller. A `#[blocking]` or `#[cpu_bound]`
//! body cannot be stopped: once it has started, dropping the future that
//! awaits it (a timeout, a cancelled job) leaves it running on its thread.
//! A caller that must not start the same work again while it still runs (a
//! job's retry) runs its future inside [`Detached::scope`]; every pool-lane
//! call started inside holds the scope until its body has returned, and
//! [`Detached::finished`] waits for that.
//!
//! The lanes take a hold; the jobs wait on it: both import this module, and
//! neither imports the other for it.

use std::future::Future;

use tokio::sync::watch;

tokio::task_local! {
    static SCOPE: Detached;
}

/// The pool work started inside one scope.
#[derive(Clone, Debug)]
pub(crate) struct Detached(watch::Sender<()>);

/// Held by a pool-lane body started inside a scope, until it returns.
#[derive(Debug)]
pub(crate) struct Hold {
    _counted: watch::Receiver<()>,
}

impl Detached {
    pub(crate) fn new() -> Detached {
        Detached(watch::Sender::new(()))
    }

    /// Runs `future` with this scope current, so that the pool work it
    /// starts is counted here.
    pub(crate) fn scope<F: Future>(&self, future: F) -> impl Future<Output = F::Output> + use<F> {
        SCOPE.scope(self.clone(), future)
    }

    /// Resolves once no pool work started in this scope is running (at
    /// once if none is).
    pub(crate) async fn finished(&self) {
        self.0.closed().await;
    }
}

/// A hold on the current scope, if the caller runs inside one; moved into
/// the pool thread's closure and dropped when the body returns or unwinds.
pub(crate) fn hold() -> Option<Hold> {
    SCOPE
        .try_with(|scope| Hold {
            _counted: scope.0.subscribe(),
        })
        .ok()
}
