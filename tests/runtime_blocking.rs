//! `#[blocking]` handlers behind a real axum server on 127.0.0.1.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Json, Path, State};
use axum::routing::{get, post};
use lanes_tests::{Gate, serve};

/// Counts the calls of one handler that are running, and the most seen at once.
struct Concurrency {
    running: AtomicUsize,
    most: AtomicUsize,
}

impl Concurrency {
    const fn new() -> Self {
        Concurrency {
            running: AtomicUsize::new(0),
            most: AtomicUsize::new(0),
        }
    }

    fn enter(&self) -> usize {
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        now
    }

    fn leave(&self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
    }

    fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

static SLEEPERS: Concurrency = Concurrency::new();

/// Sleeps 100 ms, after waiting (up to 10 s) until ten calls are in: the
/// calls can only all be in at once if none holds a tokio worker.
#[lanes::blocking]
fn sleepy() -> &'static str {
    SLEEPERS.enter();
    let deadline = Instant::now() + Duration::from_secs(10);
    while SLEEPERS.running.load(Ordering::SeqCst) < 10 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(100));
    SLEEPERS.leave();
    "slept"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_sleeping_requests_run_together_on_two_workers() {
    let addr = serve(Router::new().route("/sleep", get(sleepy))).await;
    let client = reqwest::Client::new();
    let requests: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .get(format!("http://{addr}/sleep"))
                    .send()
                    .await?
                    .text()
                    .await
            })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap().unwrap(), "slept");
    }
    // Inline in an `async fn`, the two workers would have run two at a time.
    assert_eq!(SLEEPERS.most(), 10);
}

static LIMITED: Concurrency = Concurrency::new();

#[lanes::blocking(limit = 2)]
fn slow_dependency() -> String {
    LIMITED.enter();
    std::thread::sleep(Duration::from_millis(50));
    LIMITED.leave();
    "done".to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_per_handler_limit_caps_the_calls_running_at_once() {
    let calls: Vec<_> = (0..6).map(|_| tokio::spawn(slow_dependency())).collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), "done");
    }
    assert_eq!(LIMITED.most(), 2);
}

#[derive(Clone)]
struct Catalog {
    names: Vec<String>,
}

#[lanes::blocking]
fn item(State(catalog): State<Catalog>, Path(index): Path<usize>) -> String {
    catalog.names.get(index).cloned().unwrap_or_default()
}

#[lanes::cpu_bound]
fn total(Json(values): Json<Vec<u64>>) -> Json<u64> {
    Json(values.iter().sum())
}

#[tokio::test]
async fn extractor_patterns_work_on_every_lane() {
    let app = Router::new()
        .route("/item/{index}", get(item))
        .route("/total", post(total))
        .with_state(Catalog {
            names: vec!["zero".into(), "one".into()],
        });
    let addr = serve(app).await;
    let client = reqwest::Client::new();
    let name = client
        .get(format!("http://{addr}/item/1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(name, "one");
    let sum: u64 = client
        .post(format!("http://{addr}/total"))
        .json(&[1u64, 2, 39])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(sum, 42);
}

struct Counter {
    value: u64,
}

impl Counter {
    #[lanes::blocking]
    fn incremented(mut self) -> Counter {
        self.value += 1;
        self
    }
}

#[tokio::test]
async fn methods_taking_self_by_value_are_awaitable() {
    let counter = Counter { value: 41 }.incremented().await;
    assert_eq!(counter.value, 42);
}

static ABANDONED_RAN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[lanes::blocking]
fn abandoned() {
    ABANDONED_RAN.store(true, Ordering::SeqCst);
}

#[test]
fn a_call_whose_caller_left_before_a_thread_was_free_never_runs() {
    // One blocking thread, so a second call has to queue behind the first.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (open, opened) = std::sync::mpsc::channel::<()>();
        let (started, is_started) = tokio::sync::oneshot::channel();
        let busy = tokio::task::spawn_blocking(move || {
            started.send(()).unwrap();
            opened.recv().unwrap();
        });
        is_started.await.unwrap();
        let gave_up = tokio::time::timeout(Duration::from_millis(20), abandoned()).await;
        assert!(gave_up.is_err());
        open.send(()).unwrap();
        busy.await.unwrap();
        // The one thread is free again: a call queued after the abandoned one runs.
        lanes::run_blocking(|| ()).await;
    });
    assert!(!ABANDONED_RAN.load(Ordering::SeqCst));
}

#[lanes::blocking]
fn corrupt_file() -> Vec<u8> {
    panic!("the report file is truncated")
}

#[tokio::test]
async fn a_panic_resumes_in_the_awaiting_task_with_its_message() {
    let panic = tokio::spawn(corrupt_file()).await.unwrap_err().into_panic();
    assert_eq!(
        panic.downcast_ref::<&str>(),
        Some(&"the report file is truncated")
    );
    // The blocking pool still serves calls.
    assert_eq!(lanes::run_blocking(|| 7).await, 7);
}

static EXPORT_GATE: Gate = Gate::closed();

/// At most one export runs at once; it holds its place until the test opens
/// the gate.
#[lanes::blocking(limit = 1)]
fn export() -> &'static str {
    EXPORT_GATE.pass();
    "exported"
}

/// Requests that wait past the blocking lane's maximum wait (1 s by
/// default) for the fn's own limit are shed under `ShedLayer`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_waiting_past_a_fns_limit_are_shed() {
    let app = Router::new()
        .route("/export", get(export))
        .layer(lanes::ShedLayer::new());
    let addr = serve(app).await;
    let client = reqwest::Client::new();
    let first = tokio::spawn(client.get(format!("http://{addr}/export")).send());
    while lanes::stats()
        .handler("export")
        .is_none_or(|h| h.in_flight == 0)
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    let waiting = (0..2).map(|_| client.get(format!("http://{addr}/export")).send());
    for response in futures::future::join_all(waiting).await {
        let response = response.unwrap();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
    }
    EXPORT_GATE.set(true);
    let first = first.await.unwrap().unwrap();
    assert_eq!(
        (first.status(), first.text().await.unwrap()),
        (200.try_into().unwrap(), "exported".to_owned())
    );
    assert_eq!(lanes::stats().handler("export").unwrap().shed, 2);
}
