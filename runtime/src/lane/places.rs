//! A lane's admission bound. Taking a free place and giving it back are one
//! atomic operation each: calls that find a place never touch a lock. Only
//! a call that finds none waits, on a semaphore that hands it the next
//! place given back, oldest waiter first.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use tokio::sync::Semaphore;

#[derive(Debug)]
pub(crate) struct Places {
    bound: usize,
    /// Places held by calls, or handed to a waiter and not yet taken up.
    taken: AtomicUsize,
    /// Calls waiting for a place.
    waiting: AtomicUsize,
    /// One permit for each place handed to the waiting calls.
    handed: Semaphore,
}

/// A place in a lane, given back when dropped.
#[derive(Debug)]
pub(crate) struct Place(&'static Places);

impl Places {
    pub(crate) fn new(bound: usize) -> Places {
        Places {
            bound,
            taken: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            handed: Semaphore::new(0),
        }
    }

    pub(crate) fn bound(&self) -> usize {
        self.bound
    }

    /// Places no call holds (or is being handed).
    pub(crate) fn free(&self) -> usize {
        self.bound.saturating_sub(self.taken.load(SeqCst))
    }

    fn take(&self) -> bool {
        self.taken
            .fetch_update(SeqCst, SeqCst, |taken| {
                (taken < self.bound).then_some(taken + 1)
            })
            .is_ok()
    }

    /// A free place, unless there is none or calls wait for one (a call
    /// does not pass those that wait).
    pub(crate) fn try_enter(&'static self) -> Option<Place> {
        // Made only once taken: a `Place` dropped gives a place back.
        (self.waiting.load(SeqCst) == 0 && self.take()).then(|| Place(self))
    }

    /// A place, once one is free.
    pub(crate) async fn enter(&'static self) -> Place {
        if let Some(place) = self.try_enter() {
            return place;
        }
        self.waiting.fetch_add(1, SeqCst);
        let _counted = Waiting(self);
        // A place given back before this call was counted as waiting was
        // handed to nobody: take it.
        if self.take() {
            return Place(self);
        }
        let handed = self
            .handed
            .acquire()
            .await
            .expect("the places' semaphore is never closed");
        // The place it stands for is already counted in `taken`.
        handed.forget();
        Place(self)
    }

    fn leave(&self) {
        self.taken.fetch_sub(1, SeqCst);
        // Handed on while calls wait; a permit that outlives its waiter
        // (it gave up) serves the next one at once.
        if self.waiting.load(SeqCst) > 0 && self.take() {
            self.handed.add_permits(1);
        }
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        self.0.leave();
    }
}

/// Counts a call as waiting until it has a place or gives up.
struct Waiting(&'static Places);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn places(bound: usize) -> &'static Places {
        Box::leak(Box::new(Places::new(bound)))
    }

    #[tokio::test]
    async fn a_call_past_the_bound_waits_for_a_place_given_back() {
        let lane = places(2);
        let (one, two) = (lane.enter().await, lane.enter().await);
        assert!(lane.try_enter().is_none());
        let third = tokio::spawn(lane.enter());
        tokio::task::yield_now().await;
        assert!(!third.is_finished());
        drop(one);
        let third = third.await.unwrap();
        assert_eq!(lane.free(), 0);
        drop((two, third));
        assert_eq!(lane.free(), 2);
    }

    #[tokio::test]
    async fn waiting_calls_get_places_before_newcomers() {
        let lane = places(1);
        let held = lane.enter().await;
        let waiter = tokio::spawn(lane.enter());
        while lane.waiting.load(SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        drop(held);
        // The place went to the waiter, not to a newcomer.
        assert!(lane.try_enter().is_none());
        drop(waiter.await.unwrap());
        assert!(lane.try_enter().is_some());
    }

    #[tokio::test]
    async fn a_waiter_that_gives_up_leaves_its_place_to_the_next() {
        let lane = places(1);
        let held = lane.enter().await;
        let gave_up = tokio::time::timeout(std::time::Duration::from_millis(10), lane.enter());
        assert!(gave_up.await.is_err());
        let next = tokio::spawn(lane.enter());
        drop(held);
        drop(next.await.unwrap());
        assert_eq!(lane.free(), 1);
        assert_eq!(lane.waiting.load(SeqCst), 0);
    }
}
