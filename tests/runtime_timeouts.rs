//! `timeout = ".."` on the lanes: past it, a request under `ShedLayer` or
//! `Watch` is answered `504` naming the fn and its timeout, a call outside
//! a request returns the fn's error, and each fn counts its timeouts. A
//! `#[blocking]` or `#[cpu_bound]` body cannot be stopped: it keeps its slot
//! until it returns.
//!
//! The bodies that must overrun wait on a gate (or sleep an hour) until the
//! test has seen the timeout, so a late timer on a loaded machine cannot
//! make them finish in time.

use std::io::ErrorKind;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use lanes_tests::{Gate, serve};

/// A handler's error, which `lanes::TimedOut` converts into. It answers
/// `500`, so that a `504` can only come from the layer.
#[derive(Debug)]
enum AppError {
    TimedOut(lanes::TimedOut),
}

impl From<lanes::TimedOut> for AppError {
    fn from(timed_out: lanes::TimedOut) -> AppError {
        AppError::TimedOut(timed_out)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let AppError::TimedOut(timed_out) = self;
        (StatusCode::INTERNAL_SERVER_ERROR, timed_out.to_string()).into_response()
    }
}

/// Waits (up to 10 s) until `done` holds; panics with `what` otherwise.
async fn until(what: &str, done: impl Fn() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "still not so after 10 s: {what}");
}

fn timeouts(handler: &str) -> u64 {
    lanes::stats()
        .handler(handler)
        .map_or(0, |stats| stats.timeouts)
}

static REPORT_GATE: Gate = Gate::closed();
static REPORT_ENTERED: AtomicUsize = AtomicUsize::new(0);
static REPORT_EXITED: AtomicUsize = AtomicUsize::new(0);

#[lanes::blocking(timeout = "100ms", limit = 1)]
fn report() -> Result<&'static str, AppError> {
    REPORT_ENTERED.fetch_add(1, Ordering::SeqCst);
    REPORT_GATE.pass();
    REPORT_EXITED.fetch_add(1, Ordering::SeqCst);
    Ok("report")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_call_past_its_timeout_is_answered_504_and_keeps_its_slot_until_it_returns() {
    let app = Router::new()
        .route("/report", get(report))
        .layer(lanes::ShedLayer::new());
    let addr = serve(app).await;
    let client = reqwest::Client::new();
    let get = || async {
        let response = client
            .get(format!("http://{addr}/report"))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    };

    // The body waits on the gate, far past its timeout. (A blocking thread
    // picks it up long before the timeout; one never picked up would be
    // skipped, and the wait below would fail.)
    assert_eq!(
        get().await,
        (
            504,
            "`runtime_timeouts::report` did not finish within its timeout of 100 ms\n".to_owned()
        )
    );
    until("the first body started", || {
        REPORT_ENTERED.load(Ordering::SeqCst) == 1
    })
    .await;

    // The first body still holds the fn's one slot, although its request
    // was answered: a second request waits for it, past its own timeout,
    // and so does a call outside any request, which gets the error.
    assert_eq!(get().await.0, 504);
    let AppError::TimedOut(outside) = report().await.unwrap_err();
    assert_eq!(
        (outside.function(), outside.after()),
        ("runtime_timeouts::report", Duration::from_millis(100))
    );
    assert_eq!(
        (
            REPORT_ENTERED.load(Ordering::SeqCst),
            REPORT_EXITED.load(Ordering::SeqCst)
        ),
        (1, 0),
        "a call entered while the first body held the slot"
    );
    assert_eq!(timeouts("report"), 3);

    // Once the body returns, the slot is free: the next call's body runs.
    REPORT_GATE.set(true);
    until("the first body returned", || {
        REPORT_EXITED.load(Ordering::SeqCst) == 1
    })
    .await;
    // Its answer is not asserted (on a loaded machine even an open gate
    // may take longer than the timeout); its body entering shows the slot
    // free.
    let _ = get().await;
    until("a call entered after the first body returned", || {
        REPORT_ENTERED.load(Ordering::SeqCst) == 2
    })
    .await;
}

static FETCHES: AtomicUsize = AtomicUsize::new(0);

#[lanes::io_bound(timeout = "50ms")]
async fn fetch() -> Result<&'static str, AppError> {
    FETCHES.fetch_add(1, Ordering::SeqCst);
    // Far past its timeout, and never reached: the timeout drops it.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    Ok("fetched")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_io_bound_call_past_its_timeout_is_answered_504_under_either_layer_and_errs_outside() {
    let routes = || Router::new().route("/fetch", get(fetch));
    let shed = serve(routes().layer(lanes::ShedLayer::new())).await;
    let watched = serve(routes().layer(lanes::Watch::new())).await;
    let client = reqwest::Client::new();
    for addr in [shed, watched] {
        let response = client
            .get(format!("http://{addr}/fetch"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 504);
        assert_eq!(
            response.text().await.unwrap(),
            "`runtime_timeouts::fetch` did not finish within its timeout of 50 ms\n"
        );
    }

    let AppError::TimedOut(outside) = fetch().await.unwrap_err();
    assert_eq!(outside.function(), "runtime_timeouts::fetch");
    assert_eq!(FETCHES.load(Ordering::SeqCst), 3);
    assert_eq!(timeouts("fetch"), 3);
    // The route under `Watch` counts the one answered there.
    let stats = lanes::stats();
    assert_eq!(
        stats.route("GET /fetch").map(|route| route.timeouts),
        Some(1)
    );
}

static RENDER_GATE: Gate = Gate::closed();

#[lanes::cpu_bound(timeout = "50ms")]
fn render() -> std::io::Result<String> {
    RENDER_GATE.pass();
    Ok("rendered".repeat(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cpu_bound_call_past_its_timeout_outside_a_request_returns_an_io_timed_out() {
    let error = render().await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::TimedOut);
    assert_eq!(
        error.to_string(),
        "`runtime_timeouts::render` did not finish within its timeout of 50 ms"
    );
    assert_eq!(timeouts("render"), 1);
    // Whether the body started on the CPU lane's low-priority threads
    // before the timeout depends on the machine's load: it is not asserted
    // (the blocking test shows a started body running on).
    RENDER_GATE.set(true);
}
