//! The `#[io_bound]` lane at run time: each poll of the fn's future is
//! timed, published to the watchdog, and reported when slow. Routes under
//! [`Watch`](crate::Watch) are timed the same way, and strict tests time
//! their polls here too.

use std::cell::Cell;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::clock::CLOCK;
use crate::config::lanes;
use crate::lane::{Monitors, Site};
use crate::stack::{NoStack, Stack};
use crate::stats::Running;
use crate::watchdog::ThreadSlot;

/// What a worker thread keeps for timing its polls, in one thread-local so
/// that a poll pays for one lookup.
struct Worker {
    slot: ThreadSlot,
    /// Slow polls reported on this thread, so that a slow nested poll is
    /// reported once, by the innermost site.
    slow_reports: Cell<u64>,
    /// Set while this blocking-pool thread runs a quarantined route's
    /// future: its polls hold no tokio worker, and are not timed.
    off_the_event_loop: Cell<bool>,
}

thread_local! {
    static WORKER: Worker = Worker {
        slot: ThreadSlot::for_this_thread(),
        slow_reports: Cell::new(0),
        off_the_event_loop: Cell::new(false),
    };
}

/// Runs `f`, a quarantined route's `block_on` on a blocking-pool thread,
/// with the polls in it left untimed.
pub(crate) fn off_the_event_loop<T>(f: impl FnOnce() -> T) -> T {
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            WORKER.with(|worker| worker.off_the_event_loop.set(false));
        }
    }
    WORKER.with(|worker| worker.off_the_event_loop.set(true));
    let _restore = Restore;
    f()
}

pin_project_lite::pin_project! {
    /// An `#[io_bound]` fn's future, as its expansion returns it, or a
    /// route's under [`Watch`](crate::Watch).
    #[derive(Debug)]
    pub struct IoBound<F> {
        #[pin]
        body: F,
        site: &'static Site,
        running: Option<Running>,
        // Whether one of its polls was slower than the slow-poll threshold.
        slow: bool,
    }
}

/// Wraps an `#[io_bound]` fn's body so that each of its polls is timed
/// under `site`.
pub fn io_bound<R, F: Future<Output = R>>(site: &'static Site, body: F) -> IoBound<F> {
    IoBound {
        body,
        site,
        running: None,
        slow: false,
    }
}

impl<F> IoBound<F> {
    /// Whether a poll so far held its worker past the slow-poll threshold.
    pub(crate) fn was_slow(&self) -> bool {
        self.slow
    }
}

impl<F: Future> Future for IoBound<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let site: &'static Site = this.site;
        if this.running.is_none() {
            crate::heartbeat::ensure_running();
            *this.running = Some(site.run());
        }
        let body = this.body;
        let poll_body = move || panic::catch_unwind(AssertUnwindSafe(move || body.poll(cx)));
        let monitors = &lanes().monitors;
        let polled = if monitors.slow_poll_threshold.is_none() && !monitors.watchdog {
            poll_body()
        } else {
            let (polled, slow) = WORKER.with(|worker| worker.timed(site, monitors, poll_body));
            *this.slow |= slow;
            polled
        };
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => {
                *this.running = None;
                Poll::Ready(output)
            }
            Err(payload) => {
                if let Some(running) = this.running.as_mut() {
                    running.panicked();
                }
                *this.running = None;
                panic::resume_unwind(payload)
            }
        }
    }
}

/// What a slot held before a poll published itself, put back after it.
struct Published {
    outer_site: *mut Site,
    outermost: bool,
}

impl Worker {
    /// Publishes a poll of `site` (none for a strict scope alone) that
    /// began at `began`. Nested polls name the innermost site and keep the
    /// outermost start.
    fn publish(&self, site: Option<&'static Site>, began: u64) -> Published {
        let slot = &self.slot.0;
        // Only this thread writes its slot: plain loads and stores do.
        let outer_site = slot.site.load(Ordering::Relaxed);
        if let Some(site) = site {
            slot.site
                .store(site as *const Site as *mut Site, Ordering::Release);
        }
        let outermost = slot.began.load(Ordering::Relaxed) == 0;
        if outermost {
            slot.outermost_site.store(
                site.map_or(std::ptr::null_mut(), |site| {
                    site as *const Site as *mut Site
                }),
                Ordering::Release,
            );
            slot.began.store(began, Ordering::Release);
        }
        Published {
            outer_site,
            outermost,
        }
    }

    fn unpublish(&self, published: Published) {
        let slot = &self.slot.0;
        slot.site.store(published.outer_site, Ordering::Release);
        if published.outermost {
            slot.began.store(0, Ordering::Release);
        }
    }

    /// Runs `poll` (which cannot unwind) timed at `site`, and reports it if
    /// it was slow; true if it was.
    fn timed<T>(
        &self,
        site: &'static Site,
        monitors: &Monitors,
        poll: impl FnOnce() -> T,
    ) -> (T, bool) {
        if self.off_the_event_loop.get() {
            return (poll(), false);
        }
        let began = CLOCK.raw();
        let published = monitors.watchdog.then(|| self.publish(Some(site), began));
        let reports_before = self.slow_reports.get();
        let polled = poll();
        if let Some(published) = published {
            self.unpublish(published);
        }
        let Some(threshold) = monitors.slow_poll_threshold else {
            return (polled, false);
        };
        let took = CLOCK.delta(began, CLOCK.raw());
        let slow = took > threshold;
        // A nested site that was slow has said so; this one counts it too.
        if slow && self.slow_reports.get() == reports_before {
            self.slow_reports.set(reports_before + 1);
            report_slow_poll(site, took, threshold);
        } else if slow {
            site.record_slow_poll();
        }
        (polled, slow)
    }

    /// Runs `poll` (which cannot unwind) as a strict scope's poll, watched
    /// with `threshold`; when it held the thread longer, the stack the
    /// watchdog took while it was stuck.
    fn strict<T>(&self, threshold: Duration, poll: impl FnOnce() -> T) -> (T, Option<StrictCatch>) {
        let slot = &self.slot.0;
        let began = CLOCK.raw();
        let published = self.publish(None, began);
        // The watchdog keys what it takes by the outermost poll's start.
        let watched_since = slot.began.load(Ordering::Relaxed);
        let outer_strict = slot.strict_nanos.swap(
            u64::try_from(threshold.as_nanos()).unwrap_or(u64::MAX),
            Ordering::AcqRel,
        );
        let polled = poll();
        slot.strict_nanos.store(outer_strict, Ordering::Release);
        self.unpublish(published);
        let took = CLOCK.delta(began, CLOCK.raw());
        let caught = (took > threshold).then(|| StrictCatch {
            took,
            stack: slot.strict_stack(watched_since),
        });
        (polled, caught)
    }
}

/// A poll of a strict scope that held its thread past the threshold.
#[derive(Debug)]
pub(crate) struct StrictCatch {
    pub(crate) took: Duration,
    pub(crate) stack: Result<Stack, NoStack>,
}

/// Runs `poll` (which cannot unwind) as a poll of a strict scope.
pub(crate) fn strict_poll<T>(
    threshold: Duration,
    poll: impl FnOnce() -> T,
) -> (T, Option<StrictCatch>) {
    WORKER.with(|worker| worker.strict(threshold, poll))
}

fn report_slow_poll(site: &'static Site, took: Duration, threshold: Duration) {
    site.record_slow_poll();
    let took_ms = took.as_secs_f64() * 1e3;
    tracing::warn!(
        handler = site.name,
        poll_ms = %format_args!("{took_ms:.1}"),
        "lanes: one poll of `{}` held its tokio worker for {took_ms:.1} ms (slow-poll threshold {} ms): something in it blocks; move that work into a #[blocking] or #[cpu_bound] fn",
        site.name,
        threshold.as_millis(),
    );
}
