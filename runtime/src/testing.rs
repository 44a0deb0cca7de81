//! Helpers for a service's own tests: drive concurrent requests at a router,
//! in process, while measuring how late the event loop runs, so that a test
//! can assert that a route does not stall the server; and strict mode,
//! which fails a test at the first poll that blocks, with the stack of the
//! call that blocked (see [`Strict`]).
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, http::StatusCode, routing::get};
//!
//! #[lanes::blocking]
//! fn slow_report() -> &'static str {
//!     std::thread::sleep(Duration::from_millis(50));
//!     "done"
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let app = Router::new().route("/report", get(slow_report));
//! let report = lanes::testing::Load::get(app, "/report")
//!     .requests(20)
//!     .concurrency(10)
//!     .run()
//!     .await;
//! assert_eq!(report.count(StatusCode::OK), 20);
//! // The sleeps ran on the blocking lane: the event loop was never held for
//! // one of them.
//! assert!(report.max_lag < Duration::from_millis(50), "{report:?}");
//! # }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::{self, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tokio::time::Instant;
use tower_service::Service;

use crate::poll::{StrictCatch, strict_poll};
use crate::watchdog::StrictScope;

/// How often the lag probe wakes while a load runs.
const PROBE_EVERY: Duration = Duration::from_millis(1);

type MakeRequest = dyn Fn(usize) -> Request<Body> + Send + Sync;

/// A bounded load: `requests` requests, at most `concurrency` at once, each
/// made by a fn of its index.
#[derive(Clone)]
pub struct Load {
    router: Router,
    make: Arc<MakeRequest>,
    requests: usize,
    concurrency: usize,
    strict: Option<Strict>,
}

impl std::fmt::Debug for Load {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Load")
            .field("requests", &self.requests)
            .field("concurrency", &self.concurrency)
            .finish_non_exhaustive()
    }
}

impl Load {
    /// `GET uri`, 100 requests, 10 at once, until changed.
    pub fn get(router: Router, uri: &str) -> Load {
        let uri = uri.to_owned();
        Load::new(router, move |_| {
            Request::get(&uri)
                .body(Body::empty())
                .expect("a GET request to a valid URI")
        })
    }

    /// Requests made by `make`, called with each request's index.
    pub fn new(
        router: Router,
        make: impl Fn(usize) -> Request<Body> + Send + Sync + 'static,
    ) -> Load {
        Load {
            router,
            make: Arc::new(make),
            requests: 100,
            concurrency: 10,
            strict: None,
        }
    }

    /// How many requests to send in all. Default: 100.
    pub fn requests(mut self, requests: usize) -> Load {
        self.requests = requests;
        self
    }

    /// How many requests are in flight at once (at least 1). Default: 10.
    pub fn concurrency(mut self, concurrency: usize) -> Load {
        self.concurrency = concurrency.max(1);
        self
    }

    /// Runs every request in strict mode: [`run`](Self::run) panics, once
    /// the load is over, with the stack of the first poll that blocked.
    pub fn strict(mut self, strict: Strict) -> Load {
        self.strict = Some(strict);
        self
    }

    /// Sends every request (each in a task of its own on the current
    /// runtime), reads every response body, and reports.
    pub async fn run(self) -> LoadReport {
        let first_block: FirstBlock = Arc::default();
        let _scope = self.strict.map(|_| StrictScope::enter());
        let lags = Arc::new(Mutex::new(Lags::default()));
        let probe = tokio::spawn(probe_lag(lags.clone()));
        let began = Instant::now();
        let next = Arc::new(AtomicUsize::new(0));
        let clients: Vec<_> = (0..self.concurrency.min(self.requests))
            .map(|_| {
                let load = self.clone();
                let next = next.clone();
                let first_block = first_block.clone();
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    loop {
                        let index = next.fetch_add(1, Ordering::Relaxed);
                        if index >= load.requests {
                            return seen;
                        }
                        let sent = Instant::now();
                        let request = load.send((load.make)(index));
                        let status = match load.strict {
                            Some(strict) => {
                                strict
                                    .future(request, Caught::Keep(first_block.clone()))
                                    .await
                            }
                            None => request.await,
                        };
                        seen.push((status, sent.elapsed()));
                    }
                })
            })
            .collect();
        let mut statuses = BTreeMap::new();
        let mut latencies = Vec::with_capacity(self.requests);
        for client in clients {
            let seen = client.await.expect(
                "a handler panicked; add tower-http's CatchPanicLayer to answer 500 instead",
            );
            for (status, latency) in seen {
                *statuses.entry(status.as_u16()).or_insert(0) += 1;
                latencies.push(latency);
            }
        }
        let elapsed = began.elapsed();
        probe.abort();
        let _ = probe.await;
        let mut lags =
            std::mem::take(&mut *lags.lock().unwrap_or_else(|e| e.into_inner())).finish();
        if let Some(message) = first_block.lock().unwrap_or_else(|e| e.into_inner()).take() {
            panic!("{message}");
        }
        LoadReport {
            statuses,
            elapsed,
            latency_p99: p99(&mut latencies),
            max_lag: lags.iter().copied().max().unwrap_or_default(),
            lag_p99: p99(&mut lags),
        }
    }

    async fn send(&self, request: Request<Body>) -> StatusCode {
        let mut router = self.router.clone();
        // A router's error type is `Infallible`.
        let Ok(()) =
            std::future::poll_fn(|cx| Service::<Request<Body>>::poll_ready(&mut router, cx)).await;
        let Ok(response) = router.call(request).await;
        let status = response.status();
        // The body is part of the response's cost, and of a handler's work.
        let _ = axum::body::to_bytes(response.into_body(), usize::MAX).await;
        status
    }
}

/// How late the probe woke, each time, and when it is due next.
#[derive(Default)]
struct Lags {
    seen: Vec<Duration>,
    due: Option<Instant>,
}

impl Lags {
    /// The lags seen, and the one still growing: a worker held until the
    /// load ended may never have let the probe wake.
    fn finish(mut self) -> Vec<Duration> {
        if let Some(due) = self.due {
            let late = Instant::now().saturating_duration_since(due);
            if !late.is_zero() {
                self.seen.push(late);
            }
        }
        self.seen
    }
}

/// Sleeps [`PROBE_EVERY`] over and over, and keeps how late each wake was.
async fn probe_lag(lags: Arc<Mutex<Lags>>) {
    let lock = || lags.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let due = Instant::now() + PROBE_EVERY;
        lock().due = Some(due);
        tokio::time::sleep_until(due).await;
        let mut lags = lock();
        lags.seen.push(due.elapsed());
        lags.due = None;
    }
}

fn p99(samples: &mut [Duration]) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort_unstable();
    samples[(samples.len() * 99).div_ceil(100) - 1]
}

/// What a [`Load`] saw.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct LoadReport {
    /// How many responses had each status code.
    pub statuses: BTreeMap<u16, usize>,
    /// From the first request sent to the last response read.
    pub elapsed: Duration,
    /// The 99th percentile of the requests' latencies, each from sending
    /// the request to reading the last byte of its body.
    pub latency_p99: Duration,
    /// The latest the event loop ran the lag probe, past its due time, while
    /// the load ran (tokio's timer adds up to about 1 ms to any wake).
    pub max_lag: Duration,
    /// The 99th percentile of the probe's lateness; the probe wakes every
    /// millisecond.
    pub lag_p99: Duration,
}

impl LoadReport {
    /// How many responses had `status`.
    pub fn count(&self, status: StatusCode) -> usize {
        self.statuses.get(&status.as_u16()).copied().unwrap_or(0)
    }
}

/// The message of the first poll a strict load caught blocking.
type FirstBlock = Arc<Mutex<Option<String>>>;

/// Strict mode: a test's futures run with a low poll threshold, and the
/// first poll that holds its thread longer fails the test with the stack of
/// the call that blocked, taken by the watchdog while it was stuck (on
/// Linux; elsewhere the message says there is no stack). blockbuster does
/// this for Java's reactive code; this is it for tokio.
///
/// ```should_panic
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// lanes::testing::Strict::new()
///     .run(async {
///         // A blocking call in async code: the test fails here, with this
///         // line in its message.
///         std::thread::sleep(std::time::Duration::from_millis(100));
///     })
///     .await;
/// # }
/// ```
///
/// It covers the polls of the future it runs (or, through
/// [`Load::strict`], of each request); a task the future spawns runs
/// outside it. Threshold: 5 ms by default, low enough to catch a blocking
/// call and high enough for a debug build's ordinary polls.
#[derive(Clone, Copy, Debug)]
pub struct Strict {
    threshold: Duration,
}

impl Default for Strict {
    fn default() -> Self {
        Strict {
            threshold: Duration::from_millis(5),
        }
    }
}

impl Strict {
    /// Strict mode with the 5 ms threshold.
    pub fn new() -> Strict {
        Strict::default()
    }

    /// The longest a poll may hold its thread.
    pub fn threshold(mut self, threshold: Duration) -> Strict {
        self.threshold = threshold;
        self
    }

    /// Runs `future`; panics at the first poll that held its thread longer
    /// than the threshold.
    pub async fn run<F: Future>(self, future: F) -> F::Output {
        let _scope = StrictScope::enter();
        self.future(future, Caught::Panic).await
    }

    fn future<F: Future>(self, inner: F, caught: Caught) -> StrictFuture<F> {
        StrictFuture {
            inner,
            threshold: self.threshold,
            caught,
        }
    }
}

/// What a strict future does with a poll it caught blocking.
#[derive(Debug)]
enum Caught {
    Panic,
    /// Keep the first message, for [`Load::run`] to panic with.
    Keep(FirstBlock),
}

pin_project_lite::pin_project! {
    struct StrictFuture<F> {
        #[pin]
        inner: F,
        threshold: Duration,
        caught: Caught,
    }
}

impl<F: Future> Future for StrictFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let inner = this.inner;
        let (polled, blocked) = strict_poll(*this.threshold, || {
            panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx)))
        });
        let polled = polled.unwrap_or_else(|payload| panic::resume_unwind(payload));
        if let Some(blocked) = blocked {
            let message = strict_message(&blocked, *this.threshold);
            match this.caught {
                Caught::Panic => panic!("{message}"),
                Caught::Keep(first) => {
                    first
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_or_insert(message);
                }
            }
        }
        polled
    }
}

fn strict_message(blocked: &StrictCatch, threshold: Duration) -> String {
    let stuck_at = match &blocked.stack {
        Ok(stack) => format!("it was stuck at: {stack}"),
        Err(no_stack) => no_stack.to_string(),
    };
    format!(
        "lanes strict mode: one poll held its thread for {:.1} ms (threshold {} ms); {stuck_at}. A blocking call runs in async code: move it into a #[blocking] or #[cpu_bound] fn, or await an async equivalent",
        blocked.took.as_secs_f64() * 1e3,
        threshold.as_millis(),
    )
}
