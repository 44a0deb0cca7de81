//! Cancellation requests for the attempts running in this process, handed
//! over at once: a cancel through any store handle in the process (and, on
//! PostgreSQL, a `NOTIFY` from another instance) reaches the attempt
//! without waiting for its next lease renewal. Job ids are random and
//! unique across stores, so one board serves every store.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use tokio::sync::watch;

use super::JobId;

static RUNNING: LazyLock<Mutex<HashMap<JobId, watch::Sender<bool>>>> =
    LazyLock::new(Mutex::default);

fn running() -> std::sync::MutexGuard<'static, HashMap<JobId, watch::Sender<bool>>> {
    RUNNING.lock().unwrap_or_else(|e| e.into_inner())
}

/// An attempt's place on the board, taken when it starts and given back
/// when it ends.
#[derive(Debug)]
pub(super) struct CancelRequests {
    id: JobId,
    requested: watch::Receiver<bool>,
}

impl CancelRequests {
    pub(super) fn listen(id: JobId) -> CancelRequests {
        let (sender, requested) = watch::channel(false);
        running().insert(id, sender);
        CancelRequests { id, requested }
    }

    /// Resolves once the job's cancellation is requested.
    pub(super) async fn requested(&mut self) {
        if self
            .requested
            .wait_for(|requested| *requested)
            .await
            .is_err()
        {
            // A later attempt of the job took the place: only the renewal,
            // which will find the lease lost, can end this one.
            std::future::pending::<()>().await;
        }
    }
}

impl Drop for CancelRequests {
    fn drop(&mut self) {
        let mut running = running();
        // A later attempt of the same job may have taken the place since.
        if running
            .get(&self.id)
            .is_some_and(|sender| sender.subscribe().same_channel(&self.requested))
        {
            running.remove(&self.id);
        }
    }
}

/// Tells the attempt of `id` running in this process, if any, that its
/// cancellation was requested.
pub(super) fn request(id: JobId) {
    if let Some(sender) = running().get(&id) {
        sender.send_replace(true);
    }
}
