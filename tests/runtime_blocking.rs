//! `#[blocking]` handlers behind a real axum server on 127.0.0.1.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Json, Path, State};
use axum::routing::{get, post};
use lanes_tests::serve;

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
