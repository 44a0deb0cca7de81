use super::{Site, bridge};
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
    // The permits travel with the job: a caller that goes away does not free
    // a slot while its call still runs.
    let (job, outcome) = bridge(site, move || {
        let _permits = (own_permit, lane_permit);
        f()
    });
    tokio::task::spawn_blocking(job);
    outcome.get().await
}
