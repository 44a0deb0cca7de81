//! Run-time detection for code with no attribute: under `lanes::Watch`, an
//! unannotated handler that blocks inside a library call is reported while
//! it is stuck, with its route and the file and line of the call; without
//! the layer nothing sees it. Strict mode fails a test at its first
//! blocking poll, with that stack. Pool-lane bodies log inside the caller's
//! span. A binary of its own: it installs the global tracing subscriber.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use lanes::testing::{Load, Strict};
use tracing::Instrument;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

/// A vendor SDK whose "simple" call blocks, out of any macro's sight.
mod vendor {
    use super::*;

    pub(super) static RELEASED: AtomicBool = AtomicBool::new(false);

    /// The line of the blocking call in `fetch_rates`, five lines down.
    pub(super) const SLEEP_LINE: u32 = line!() + 5;
    /// Sleeps until the test releases it (or 30 s pass: the first stack of
    /// a debug build reads its debug info, slowly on a loaded machine).
    pub(super) fn fetch_rates() -> &'static str {
        for _ in 0..6000 {
            std::thread::sleep(Duration::from_millis(5));
            if RELEASED.load(Ordering::Acquire) {
                return "1.08";
            }
        }
        "never released"
    }
}

async fn rates() -> &'static str {
    vendor::fetch_rates()
}

async fn briefly_blocks() -> &'static str {
    std::thread::sleep(Duration::from_millis(300));
    "done"
}

/// Every event logged: its message, and the names of the spans it was
/// logged in, innermost first.
#[derive(Clone, Debug)]
struct Event {
    message: String,
    spans: Vec<String>,
}

type Events = Arc<Mutex<Vec<Event>>>;

struct Recording(Events);

impl<S> tracing_subscriber::Layer<S> for Recording
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, context: Context<'_, S>) {
        struct Message(String);
        impl Visit for Message {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                }
            }
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let spans = context
            .event_scope(event)
            .map(|scope| scope.map(|span| span.name().to_owned()).collect())
            .unwrap_or_default();
        self.0.lock().unwrap().push(Event {
            message: message.0,
            spans,
        });
    }
}

fn events() -> Events {
    static EVENTS: OnceLock<Events> = OnceLock::new();
    EVENTS
        .get_or_init(|| {
            let events = Events::default();
            let subscriber = tracing_subscriber::registry().with(Recording(events.clone()));
            tracing::subscriber::set_global_default(subscriber).unwrap();
            events
        })
        .clone()
}

/// `std::thread::sleep`, under the path the toolchain's std defines it at.
fn is_sleep(function: Option<&str>) -> bool {
    function.is_some_and(|f| f.starts_with("std::thread::") && f.ends_with("::sleep"))
}

fn logged(events: &Events, part: &str) -> Vec<Event> {
    events
        .lock()
        .unwrap()
        .iter()
        .filter(|event| event.message.contains(part))
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_names_the_route_and_the_blocking_line_while_the_poll_is_stuck() {
    let events = events();
    let app = Router::new()
        .route("/rates/{currency}", get(rates))
        .layer(lanes::Watch::new());
    let addr = lanes_tests::serve(app).await;
    let call = tokio::spawn(async move {
        reqwest::get(format!("http://{addr}/rates/USD"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });

    // The handler stays stuck until the stack is in the route's figures.
    let stack = loop {
        let stats = lanes::stats();
        if let Some(stack) = stats
            .route("GET /rates/{currency}")
            .and_then(|route| route.last_stuck_stack.clone())
        {
            break stack;
        }
        assert!(!call.is_finished(), "the call ended before it was reported");
        // Not tokio's timer: with one worker held, the runtime's timers may
        // not fire (a parked worker drives them), and this loop runs on the
        // test's own thread.
        std::thread::sleep(Duration::from_millis(10));
    };
    let innermost = stack
        .frames
        .last()
        .expect("the stack has the user's frames");
    assert_eq!(innermost.function, "runtime_watch::vendor::fetch_rates");
    assert!(
        innermost
            .file
            .as_deref()
            .is_some_and(|file| file.ends_with("runtime_watch.rs")),
        "{stack:?}"
    );
    assert_eq!(innermost.line, Some(vendor::SLEEP_LINE), "{stack:?}");
    assert!(is_sleep(stack.blocking_call.as_deref()), "{stack:?}");
    assert!(
        stack
            .frames
            .iter()
            .any(|frame| frame.function == "runtime_watch::rates"),
        "the handler is on the stack: {stack:?}"
    );

    let reports = logged(&events, "is still running");
    let report = reports.first().expect("the watchdog logged the stuck poll");
    let expected = format!(
        "it is stuck at: GET /rates/{{currency}} → {stack}. A blocking call runs on the event loop"
    );
    assert!(report.message.contains(&expected), "{}", report.message);
    assert!(
        report
            .message
            .starts_with("lanes: `GET /rates/{currency}` has held tokio worker"),
        "{}",
        report.message
    );

    vendor::RELEASED.store(true, Ordering::Release);
    assert_eq!(call.await.unwrap(), "1.08");
    let stats = lanes::stats();
    let route = stats.route("GET /rates/{currency}").unwrap();
    assert_eq!(
        (route.completed, route.slow_polls, route.stuck_polls),
        (1, 1, 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_layer_the_same_handler_goes_unseen() {
    let events = events();
    let app = Router::new().route("/unwatched", get(briefly_blocks));
    let addr = lanes_tests::serve(app).await;
    let body = reqwest::get(format!("http://{addr}/unwatched"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "done");
    // The poll held its worker three times the watchdog's threshold.
    let stats = lanes::stats();
    assert!(stats.route("GET /unwatched").is_none());
    assert!(
        logged(&events, "briefly_blocks").is_empty() && logged(&events, "/unwatched").is_empty(),
        "nothing reports an unwatched handler"
    );

    // The same handler under the layer is caught.
    let watched = Router::new()
        .route("/watched", get(briefly_blocks))
        .layer(lanes::Watch::new());
    let report = Load::get(watched, "/watched")
        .requests(1)
        .concurrency(1)
        .run()
        .await;
    assert_eq!(report.count(StatusCode::OK), 1);
    // The watchdog counts the stuck poll once its stack is symbolized.
    let figures = || {
        let stats = lanes::stats();
        let route = stats
            .route("GET /watched")
            .expect("the layer saw the route");
        (route.slow_polls, route.stuck_polls)
    };
    for _ in 0..3000 {
        if figures().1 == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(figures(), (1, 1));
}

/// A test body that blocks: the line strict mode must name.
const BLOCKING_TEST_LINE: u32 = line!() + 3;

async fn a_test_body_that_blocks() {
    std::thread::sleep(Duration::from_millis(200));
    tokio::task::yield_now().await;
}

#[tokio::test]
async fn strict_mode_fails_a_test_that_blocks_with_its_stack() {
    let failed = tokio::spawn(Strict::new().run(a_test_body_that_blocks()))
        .await
        .expect_err("strict mode fails the test");
    let message = failed.into_panic();
    let message = message
        .downcast_ref::<String>()
        .expect("a formatted panic message");
    assert!(
        message.starts_with("lanes strict mode: one poll held its thread for "),
        "{message}"
    );
    assert!(
        message.contains("(threshold 5 ms); it was stuck at: ")
            && message.contains("runtime_watch::a_test_body_that_blocks (")
            && message.contains(&format!(
                "runtime_watch.rs:{BLOCKING_TEST_LINE}) → std::thread::"
            ))
            && message.contains("sleep. A blocking call runs in async code"),
        "{message}"
    );
}

#[tokio::test]
async fn strict_mode_passes_a_test_that_does_not_block() {
    // A loaded machine can stall any poll for a few milliseconds: this
    // threshold only catches a real block.
    let answer = Strict::new()
        .threshold(Duration::from_millis(100))
        .run(async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            42
        })
        .await;
    assert_eq!(answer, 42);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strict_load_fails_with_the_stack_of_the_route_that_blocks() {
    let app = Router::new().route("/blocks", get(briefly_blocks));
    let load = Load::get(app, "/blocks")
        .requests(2)
        .concurrency(1)
        .strict(Strict::new());
    let failed = tokio::spawn(load.run()).await.expect_err("the load fails");
    let message = failed.into_panic();
    let message = message.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("it was stuck at: runtime_watch::briefly_blocks (")
            && message.contains("→ std::thread::"),
        "{message}"
    );
}

#[lanes::blocking]
#[tracing::instrument]
fn blocking_instrumented_below() {
    tracing::info!("blocking body, instrument below");
}

#[tracing::instrument]
#[lanes::blocking]
fn blocking_instrumented_above() {
    tracing::info!("blocking body, instrument above");
}

#[lanes::cpu_bound]
#[tracing::instrument]
fn cpu_instrumented_below() {
    tracing::info!("cpu body, instrument below");
}

#[tracing::instrument]
#[lanes::cpu_bound]
fn cpu_instrumented_above() {
    tracing::info!("cpu body, instrument above");
}

async fn traced_handler() -> &'static str {
    blocking_instrumented_below().await;
    blocking_instrumented_above().await;
    cpu_instrumented_below().await;
    cpu_instrumented_above().await;
    lanes::run_blocking(|| tracing::info!("run_blocking closure")).await;
    lanes::run_cpu(|| tracing::info!("run_cpu closure")).await;
    "traced"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_lane_bodies_log_inside_the_request_span_and_their_own() {
    let events = events();
    let app = Router::new().route("/traced", get(traced_handler)).layer(
        tower_http::trace::TraceLayer::new_for_http()
            .make_span_with(|_: &axum::http::Request<_>| tracing::info_span!("request")),
    );
    let report = Load::get(app, "/traced")
        .requests(1)
        .concurrency(1)
        .run()
        .instrument(tracing::info_span!("test"))
        .await;
    assert_eq!(report.count(StatusCode::OK), 1);
    for (message, spans) in [
        (
            "blocking body, instrument below",
            &["blocking_instrumented_below", "request"][..],
        ),
        (
            "blocking body, instrument above",
            &["blocking_instrumented_above", "request"],
        ),
        (
            "cpu body, instrument below",
            &["cpu_instrumented_below", "request"],
        ),
        (
            "cpu body, instrument above",
            &["cpu_instrumented_above", "request"],
        ),
        ("run_blocking closure", &["request"]),
        ("run_cpu closure", &["request"]),
    ] {
        let seen = logged(&events, message);
        assert_eq!(seen.len(), 1, "{message}");
        assert_eq!(seen[0].spans, spans, "{message}");
    }
}
