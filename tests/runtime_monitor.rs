//! What no macro can see, caught at run time: a blocking call hidden behind
//! a plain library call in an `#[io_bound]` handler is reported by the
//! watchdog while it is stuck and by the slow-poll timer once it returns,
//! in the logs, in `lanes::stats()` and through the `metrics` facade; and
//! so is a job that fails. A binary of its own: it installs the global
//! tracing subscriber and metrics recorder.

use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use lanes::testing::Load;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::{Context, SubscriberExt};

/// A vendor SDK whose "simple" call blocks: the macro sees only
/// `vendor::fetch_rates()`, a plain fn call.
mod vendor {
    use super::*;

    /// The line of the blocking call below.
    pub(super) const RECV_LINE: u32 = line!() + 8;

    /// Blocks until the watchdog has reported the stuck worker (or 10 s).
    pub(super) fn fetch_rates() -> &'static str {
        let released = watchdog_reports()
            .1
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(10));
        match released {
            Ok(()) => "released by the watchdog",
            Err(_) => "the watchdog never reported",
        }
    }
}

#[lanes::io_bound]
async fn rates() -> &'static str {
    vendor::fetch_rates()
}

/// Every event logged, as (message, fields).
type Events = Arc<Mutex<Vec<(String, Vec<(String, String)>)>>>;

fn watchdog_reports() -> &'static (mpsc::Sender<()>, Mutex<mpsc::Receiver<()>>) {
    static CHANNEL: OnceLock<(mpsc::Sender<()>, Mutex<mpsc::Receiver<()>>)> = OnceLock::new();
    CHANNEL.get_or_init(|| {
        let (sender, receiver) = mpsc::channel();
        (sender, Mutex::new(receiver))
    })
}

/// Keeps every event, and releases the vendor call when the watchdog speaks.
struct Recording(Events);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recording {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        struct Fields(String, Vec<(String, String)>);
        impl Visit for Fields {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.0 = format!("{value:?}");
                } else {
                    self.1.push((field.name().to_owned(), format!("{value:?}")));
                }
            }
        }
        let mut fields = Fields(String::new(), Vec::new());
        event.record(&mut fields);
        if fields.0.contains("is still running") {
            let _ = watchdog_reports().0.send(());
        }
        self.0.lock().unwrap().push((fields.0, fields.1));
    }
}

fn observe() -> (Events, PrometheusHandle) {
    static OBSERVED: OnceLock<(Events, PrometheusHandle)> = OnceLock::new();
    OBSERVED
        .get_or_init(|| {
            let events = Events::default();
            let subscriber = tracing_subscriber::registry().with(Recording(events.clone()));
            tracing::subscriber::set_global_default(subscriber).unwrap();
            let metrics = PrometheusBuilder::new().install_recorder().unwrap();
            (events, metrics)
        })
        .clone()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_blocking_call_is_reported_while_stuck_and_after() {
    let (events, metrics) = observe();
    let app = Router::new().route("/rates", get(rates));
    let addr = lanes_tests::serve(app).await;

    let body = reqwest::get(format!("http://{addr}/rates"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The call could only return because the watchdog reported it first.
    assert_eq!(body, "released by the watchdog");

    let events = events.lock().unwrap().clone();
    let (stuck, stuck_fields) = events
        .iter()
        .find(|(message, _)| message.contains("is still running"))
        .expect("the watchdog reported the stuck worker");
    assert!(
        stuck.starts_with("lanes: `runtime_monitor::rates` has held tokio worker `tokio-rt-worker` in one poll for "),
        "{stuck}"
    );
    // The stack names the line that blocks, in the library the macro could
    // not see into.
    assert!(
        stuck.contains("ms and is still running (watchdog threshold 100 ms); it is stuck at: runtime_monitor::rates → ")
            && stuck.contains(&format!("→ runtime_monitor::vendor::fetch_rates (runtime_monitor.rs:{}) → std::sync::mpsc::", vendor::RECV_LINE))
            && stuck.ends_with(". A blocking call runs on the event loop: move it into a #[blocking] or #[cpu_bound] fn"),
        "{stuck}"
    );
    assert_eq!(
        field(stuck_fields, "handler"),
        Some("\"runtime_monitor::rates\"")
    );

    let (slow, slow_fields) = events
        .iter()
        .find(|(message, _)| message.contains("slow-poll threshold"))
        .expect("the slow poll was logged");
    assert!(
        slow.starts_with("lanes: one poll of `runtime_monitor::rates` held its tokio worker for "),
        "{slow}"
    );
    assert!(
        slow.ends_with("ms (slow-poll threshold 10 ms): something in it blocks; move that work into a #[blocking] or #[cpu_bound] fn"),
        "{slow}"
    );
    let poll_ms: f64 = field(slow_fields, "poll_ms").unwrap().parse().unwrap();
    assert!(
        poll_ms >= 100.0,
        "the poll lasted at least until the watchdog's report: {poll_ms} ms"
    );

    let stats = lanes::stats();
    let handler = stats.handler("rates").expect("the handler is listed");
    assert_eq!(
        (handler.completed, handler.slow_polls, handler.stuck_polls),
        (1, 1, 1)
    );
    assert_eq!(handler.in_flight, 0);

    // Gauges reach the recorder within the metrics flush (100 ms).
    let lines = [
        r#"lanes_slow_polls_total{lane="io_bound",handler="runtime_monitor::rates"} 1"#,
        r#"lanes_stuck_polls_total{lane="io_bound",handler="runtime_monitor::rates"} 1"#,
        r#"lanes_calls_in_flight{lane="io_bound",handler="runtime_monitor::rates"} 0"#,
    ];
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let rendered = metrics.render();
        let missing: Vec<_> = lines
            .iter()
            .filter(|line| !rendered.lines().any(|l| l == **line))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "missing {missing:?} in\n{rendered}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn stalls_inline() -> &'static str {
    std::thread::sleep(Duration::from_millis(100));
    "done"
}

#[lanes::blocking]
fn offloaded() -> &'static str {
    std::thread::sleep(Duration::from_millis(100));
    "done"
}

/// On one thread, a route that sleeps inline holds the event loop for its
/// whole sleep; the same route on the blocking lane never does.
#[tokio::test(flavor = "current_thread")]
async fn a_load_test_tells_a_stalling_route_from_an_offloaded_one() {
    observe();
    let app = Router::new()
        .route("/inline", get(stalls_inline))
        .route("/offloaded", get(offloaded));

    let inline = Load::get(app.clone(), "/inline")
        .requests(5)
        .concurrency(5)
        .run()
        .await;
    assert_eq!(inline.count(StatusCode::OK), 5);
    assert!(inline.max_lag >= Duration::from_millis(90), "{inline:?}");

    let offloaded = Load::get(app, "/offloaded")
        .requests(5)
        .concurrency(5)
        .run()
        .await;
    assert_eq!(offloaded.count(StatusCode::OK), 5);
    assert!(
        offloaded.max_lag < Duration::from_millis(90),
        "{offloaded:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_and_dead_jobs_are_logged_and_counted() {
    use lanes::jobs::{JobContext, JobState, NewJob, Registry, Store, Workers};

    let (events, metrics) = observe();
    let store = Store::memory(100);
    let registry = Registry::new().register("refused_mail", |_: JobContext, (): ()| async {
        Err::<(), _>("the mail server said no")
    });
    let workers = Workers::start(store.clone(), registry, lanes_tests::fast_workers()).unwrap();
    let id = store
        .enqueue(NewJob::new("refused_mail", serde_json::json!(null)).max_attempts(2))
        .await
        .unwrap();
    assert_eq!(lanes_tests::ended(&store, id).await.state, JobState::Dead);
    workers.shutdown(Duration::from_secs(5)).await;

    let logged = |message: &str| {
        let events = events.lock().unwrap();
        let (_, fields) = events
            .iter()
            .find(|(m, fields)| m == message && field(fields, "job") == Some(&id.to_string()))
            .unwrap_or_else(|| panic!("no event `{message}` for the job"));
        (
            field(fields, "kind").map(str::to_owned),
            field(fields, "attempt").map(str::to_owned),
            field(fields, "error").map(str::to_owned),
        )
    };
    let failure = |attempt: &str| {
        (
            Some("\"refused_mail\"".to_owned()),
            Some(attempt.to_owned()),
            Some("\"the mail server said no\"".to_owned()),
        )
    };
    assert_eq!(
        logged("lanes: a job's attempt failed; it will run again"),
        failure("1")
    );
    assert_eq!(
        logged("lanes: a job is dead; it will not run again"),
        failure("2")
    );

    let stats = lanes::stats();
    let figures = stats
        .job("refused_mail", "default")
        .expect("the kind is in stats()");
    assert_eq!(
        (
            figures.retried,
            figures.dead,
            figures.succeeded,
            figures.running
        ),
        (1, 1, 0, 0)
    );
    // Counted when the workers start (the job may not be enqueued yet, or
    // not claimed yet), and every 5 s after.
    assert!(
        stats.queues.iter().any(|q| q.queue == "default"),
        "{:?}",
        stats.queues
    );
    let text = metrics.render();
    assert!(
        text.contains("lanes_jobs_waiting{queue=\"default\"} "),
        "no waiting gauge in:\n{text}"
    );
    for outcome in ["retried", "dead"] {
        let line = format!(
            "lanes_jobs_attempts_total{{kind=\"refused_mail\",queue=\"default\",outcome=\"{outcome}\"}} 1"
        );
        assert!(text.contains(&line), "no `{line}` in:\n{text}");
    }
}
