//! The `#[io_bound]` lane at run time: each poll of the fn's future is
//! timed, published to the watchdog, and reported when slow.

use std::cell::Cell;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use crate::clock::CLOCK;
use crate::config::lanes;
use crate::lane::{Monitors, Site};
use crate::stats::Running;
use crate::watchdog::PollSlot;

/// What a worker thread keeps for timing its polls, in one thread-local so
/// that a poll pays for one lookup.
struct Worker {
    slot: Arc<PollSlot>,
    /// Slow polls reported on this thread, so that a slow nested
    /// `#[io_bound]` fn is reported once, by the innermost.
    slow_reports: Cell<u64>,
}

thread_local! {
    static WORKER: Worker = Worker {
        slot: PollSlot::for_this_thread(),
        slow_reports: Cell::new(0),
    };
}

pin_project_lite::pin_project! {
    /// An `#[io_bound]` fn's future, as its expansion returns it.
    #[derive(Debug)]
    pub struct IoBound<F> {
        #[pin]
        body: F,
        site: &'static Site,
        running: Option<Running>,
    }
}

pub fn io_bound<R, F: Future<Output = R>>(site: &'static Site, body: F) -> IoBound<F> {
    IoBound {
        body,
        site,
        running: None,
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
            WORKER.with(|worker| worker.timed(site, monitors, poll_body))
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

impl Worker {
    /// Runs `poll` (which cannot unwind) with its start published to the
    /// watchdog, and reports it if it was slow. Nested `#[io_bound]` polls
    /// name the innermost fn and keep the outermost start.
    fn timed<T>(&self, site: &'static Site, monitors: &Monitors, poll: impl FnOnce() -> T) -> T {
        let began = CLOCK.raw();
        let slot = &self.slot;
        let publish = monitors.watchdog;
        let (outer, outermost) = if publish {
            // Only this thread writes its slot: plain loads and stores do.
            let outer = slot.site.load(Ordering::Relaxed);
            slot.site
                .store(site as *const Site as *mut Site, Ordering::Release);
            let outermost = slot.began.load(Ordering::Relaxed) == 0;
            if outermost {
                slot.began.store(began, Ordering::Release);
            }
            (outer, outermost)
        } else {
            (std::ptr::null_mut(), false)
        };
        let reports_before = self.slow_reports.get();
        let polled = poll();
        if publish {
            slot.site.store(outer, Ordering::Release);
            if outermost {
                slot.began.store(0, Ordering::Release);
            }
        }
        if let Some(threshold) = monitors.slow_poll_threshold {
            let took = CLOCK.delta(began, CLOCK.raw());
            // A nested `#[io_bound]` fn that was slow has said so.
            if took > threshold && self.slow_reports.get() == reports_before {
                self.slow_reports.set(reports_before + 1);
                report_slow_poll(site, took, threshold);
            }
        }
        polled
    }
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
