use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use super::Site;
use super::places::{Place, Places};
use crate::shed;

/// The places a call holds in its lane and in its fn's own limit, until it
/// ends.
#[derive(Debug)]
pub(crate) struct Admitted {
    _own: Option<SemaphorePermit<'static>>,
    _lane: Place,
}

/// Waits for a place in `lane` and in the fn's own limit. A call made while
/// serving a request under [`ShedLayer`](crate::ShedLayer) waits at most
/// `max_wait`; past it the request is shed, and this future never resolves
/// (the layer answers `503` and drops it). Any other call waits its turn.
pub(crate) async fn admit(
    site: &'static Site,
    lane: &'static Places,
    max_wait: Duration,
) -> Admitted {
    let own = site.limit.as_ref();
    // The common case, free places, takes no timer.
    if let Ok(own_place) = own.map(Semaphore::try_acquire).transpose() {
        match lane.try_enter() {
            Some(lane_place) => {
                return Admitted {
                    _own: own_place,
                    _lane: lane_place,
                };
            }
            None => drop(own_place),
        }
    }
    let acquire = async {
        // The semaphores are never closed, so `acquire` cannot fail.
        let own = match own {
            Some(limit) => Some(
                limit
                    .acquire()
                    .await
                    .expect("lane semaphores are never closed"),
            ),
            None => None,
        };
        let lane = lane.enter().await;
        Admitted {
            _own: own,
            _lane: lane,
        }
    };
    if !shed::can_shed() {
        return acquire.await;
    }
    match tokio::time::timeout(max_wait, acquire).await {
        Ok(admitted) => admitted,
        Err(_) => shed::shed(site).await,
    }
}
