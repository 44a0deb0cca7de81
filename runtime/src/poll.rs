//! The `#[io_bound]` lane at run time: each poll of the fn's future is
//! timed, published to the watchdog, and reported when slow.

use std::cell::Cell;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::config::lanes;
use crate::lane::Site;
use crate::stats::Running;
use crate::watchdog::Published;

thread_local! {
    /// Slow polls reported on this thread, so that a slow nested
    /// `#[io_bound]` fn is reported once, by the innermost.
    static SLOW_REPORTS: Cell<u64> = const { Cell::new(0) };
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
        let mut body = this.body;
        let mut poll_body = || panic::catch_unwind(AssertUnwindSafe(|| body.as_mut().poll(cx)));
        let slow_poll_threshold = lanes().settings.slow_poll_threshold;
        let polled = if slow_poll_threshold.is_none() && !crate::watchdog::is_on() {
            poll_body()
        } else {
            let began = Instant::now();
            let reports_before = SLOW_REPORTS.with(Cell::get);
            let published = Published::new(site, began);
            let polled = poll_body();
            drop(published);
            if let Some(threshold) = slow_poll_threshold {
                let took = began.elapsed();
                // A nested `#[io_bound]` fn that was slow has said so.
                if took > threshold && SLOW_REPORTS.with(Cell::get) == reports_before {
                    SLOW_REPORTS.with(|reports| reports.set(reports_before + 1));
                    report_slow_poll(site, took, threshold);
                }
            }
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

fn report_slow_poll(site: &'static Site, took: Duration, threshold: Duration) {
    site.record_slow_poll();
    let took_ms = took.as_secs_f64() * 1e3;
    tracing::warn!(
        handler = site.name,
        poll_ms = took_ms,
        "lanes: one poll of `{}` held its tokio worker for {took_ms:.1} ms (slow-poll threshold {} ms): something in it blocks; move that work into a #[blocking] or #[cpu_bound] fn",
        site.name,
        threshold.as_millis(),
    );
}
