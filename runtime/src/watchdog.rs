//! The blocked-worker watchdog: every thread that polls an `#[io_bound]` fn
//! publishes when its current poll began and of which fn; a watchdog thread
//! reads them and reports a poll that has held its worker past the
//! threshold, while it is still stuck.

use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

use crate::lane::Site;

/// Whether polls publish themselves at all: off with the watchdog.
static ON: AtomicBool = AtomicBool::new(false);
static SLOTS: Mutex<Vec<Weak<PollSlot>>> = Mutex::new(Vec::new());
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// What one thread is polling now.
#[derive(Debug)]
struct PollSlot {
    /// When the outermost `#[io_bound]` poll on this thread began, in
    /// nanoseconds since [`EPOCH`] plus one; 0 while no such poll runs.
    began: AtomicU64,
    /// The innermost `#[io_bound]` fn being polled.
    site: AtomicPtr<Site>,
    /// The `began` already reported, written by the watchdog only.
    reported: AtomicU64,
    thread: String,
}

thread_local! {
    static SLOT: Arc<PollSlot> = {
        let slot = Arc::new(PollSlot {
            began: AtomicU64::new(0),
            site: AtomicPtr::new(std::ptr::null_mut()),
            reported: AtomicU64::new(0),
            thread: std::thread::current().name().unwrap_or("unnamed").to_owned(),
        });
        SLOTS.lock().unwrap_or_else(|e| e.into_inner()).push(Arc::downgrade(&slot));
        slot
    };
}

pub(crate) fn is_on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Starts the watchdog thread.
pub(crate) fn start(threshold: Duration) {
    LazyLock::force(&EPOCH);
    let spawned = std::thread::Builder::new()
        .name("lanes-watchdog".into())
        .spawn(move || watch(threshold));
    match spawned {
        Ok(_) => ON.store(true, Ordering::Release),
        Err(error) => tracing::warn!(%error, "lanes: could not start the watchdog thread"),
    }
}

fn watch(threshold: Duration) {
    let threshold_nanos = nanos(threshold);
    let every = (threshold / 4).max(Duration::from_millis(1));
    loop {
        std::thread::sleep(every);
        let now = nanos(EPOCH.elapsed()) + 1;
        let mut slots = SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        slots.retain(|slot| {
            let Some(slot) = slot.upgrade() else {
                return false;
            };
            let began = slot.began.load(Ordering::Acquire);
            let stuck_for = now.saturating_sub(began);
            if began != 0
                && stuck_for >= threshold_nanos
                && slot.reported.load(Ordering::Relaxed) != began
            {
                slot.reported.store(began, Ordering::Relaxed);
                report(&slot, Duration::from_nanos(stuck_for), threshold);
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

fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Publishes a poll of `site` beginning at `began` on this thread, until
/// dropped; nested `#[io_bound]` polls name the innermost fn and keep the
/// outermost start.
pub(crate) struct Published {
    /// The fn polled outside this one, and whether this poll is outermost;
    /// `None` while the watchdog is off.
    outer: Option<(*mut Site, bool)>,
}

impl Published {
    pub(crate) fn new(site: &'static Site, began: Instant) -> Published {
        if !is_on() {
            return Published { outer: None };
        }
        let outer = SLOT.with(|slot| {
            let outer = slot
                .site
                .swap(site as *const Site as *mut Site, Ordering::Release);
            let outermost = slot.began.load(Ordering::Relaxed) == 0;
            if outermost {
                let since_epoch = nanos(began.saturating_duration_since(*EPOCH)) + 1;
                slot.began.store(since_epoch, Ordering::Release);
            }
            (outer, outermost)
        });
        Published { outer: Some(outer) }
    }
}

impl Drop for Published {
    fn drop(&mut self) {
        if let Some((outer, outermost)) = self.outer {
            let _ = SLOT.try_with(|slot| {
                slot.site.store(outer, Ordering::Release);
                if outermost {
                    slot.began.store(0, Ordering::Release);
                }
            });
        }
    }
}
