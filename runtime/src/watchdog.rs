//! The blocked-worker watchdog: every thread that polls an `#[io_bound]` fn
//! publishes, in a [`PollSlot`], when its current poll began and of which
//! fn; a watchdog thread reads the slots and reports a poll that has held
//! its worker past the threshold, while it is still stuck.

use std::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::Duration;

use crate::clock::CLOCK;
use crate::lane::Site;

static SLOTS: Mutex<Vec<Weak<PollSlot>>> = Mutex::new(Vec::new());

/// What one thread is polling now.
#[derive(Debug)]
pub(crate) struct PollSlot {
    /// The [`CLOCK`] reading when the outermost `#[io_bound]` poll on this
    /// thread began; 0 while no such poll runs.
    pub(crate) began: AtomicU64,
    /// The innermost `#[io_bound]` fn being polled.
    pub(crate) site: AtomicPtr<Site>,
    /// The `began` already reported, written by the watchdog only.
    reported: AtomicU64,
    thread: String,
}

impl PollSlot {
    /// A slot for the calling thread, watched until the thread ends.
    pub(crate) fn for_this_thread() -> Arc<PollSlot> {
        let slot = Arc::new(PollSlot {
            began: AtomicU64::new(0),
            site: AtomicPtr::new(std::ptr::null_mut()),
            reported: AtomicU64::new(0),
            thread: std::thread::current()
                .name()
                .unwrap_or("unnamed")
                .to_owned(),
        });
        SLOTS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(&slot));
        slot
    }
}

/// Starts the watchdog thread; false if the thread could not start.
pub(crate) fn start(threshold: Duration) -> bool {
    LazyLock::force(&CLOCK);
    let spawned = std::thread::Builder::new()
        .name("lanes-watchdog".into())
        .spawn(move || watch(threshold));
    if let Err(error) = &spawned {
        tracing::warn!(%error, "lanes: could not start the watchdog thread");
    }
    spawned.is_ok()
}

fn watch(threshold: Duration) {
    let every = (threshold / 4).max(Duration::from_millis(1));
    loop {
        std::thread::sleep(every);
        let now = CLOCK.raw();
        let mut slots = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        slots.retain(|slot| {
            let Some(slot) = slot.upgrade() else {
                return false;
            };
            let began = slot.began.load(Ordering::Acquire);
            let stuck_for = CLOCK.delta(began, now);
            if began != 0
                && stuck_for >= threshold
                && slot.reported.load(Ordering::Relaxed) != began
            {
                slot.reported.store(began, Ordering::Relaxed);
                report(&slot, stuck_for, threshold);
            }
            true
        });
    }
}

fn report(slot: &PollSlot, stuck_for: Duration, threshold: Duration) {
    // The site is read a moment after `began`; a poll that ended in between
    // leaves null, or names the fn now polled there.
    let site = slot.site.load(Ordering::Acquire);
    // SAFETY: only `&'static Site`s are stored in a slot.
    let Some(site) = (unsafe { site.as_ref() }) else {
        return;
    };
    site.record_stuck_poll();
    tracing::warn!(
        handler = site.name,
        thread = %slot.thread,
        stuck_ms = stuck_for.as_millis() as u64,
        "lanes: `{}` has held tokio worker `{}` in one poll for {} ms and is still running (watchdog threshold {} ms): a blocking call runs on the event loop; move it into a #[blocking] or #[cpu_bound] fn",
        site.name,
        slot.thread,
        stuck_for.as_millis(),
        threshold.as_millis(),
    );
}
