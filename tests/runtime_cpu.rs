//! `#[cpu_bound]` handlers: panics, a saturated pool, and abandoned calls.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use lanes_tests::{cpu_lane_runs_together, serve};
use tower_http::catch_panic::CatchPanicLayer;

const CPU_THREADS: usize = 2;

/// Every test here fills the CPU pool on purpose, so they take turns.
static POOL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn install_lanes() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        lanes::Config::new()
            .cpu_threads(CPU_THREADS)
            .install()
            .unwrap()
    });
}

/// Occupies every CPU thread until the returned gate is opened.
async fn occupy_cpu_threads() -> (Arc<AtomicBool>, Vec<tokio::task::JoinHandle<()>>) {
    let open = Arc::new(AtomicBool::new(false));
    let started = Arc::new(AtomicUsize::new(0));
    let busy = (0..CPU_THREADS)
        .map(|_| {
            let (open, started) = (open.clone(), started.clone());
            tokio::spawn(lanes::run_cpu(move || {
                started.fetch_add(1, Ordering::SeqCst);
                while !open.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
            }))
        })
        .collect();
    while started.load(Ordering::SeqCst) < CPU_THREADS {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    (open, busy)
}

#[lanes::cpu_bound]
fn explode() -> String {
    panic!("the model weights are corrupt")
}

#[lanes::cpu_bound]
fn square(axum::extract::Path(n): axum::extract::Path<u64>) -> String {
    (n * n).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_answers_500_and_the_pool_keeps_its_threads() {
    install_lanes();
    let _pool = POOL.lock().await;
    let app = Router::new()
        .route("/explode", get(explode))
        .route("/square/{n}", get(square))
        .layer(CatchPanicLayer::new());
    let addr = serve(app).await;
    let client = reqwest::Client::new();
    for _ in 0..CPU_THREADS * 2 {
        let response = client
            .get(format!("http://{addr}/explode"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
    let next = client
        .get(format!("http://{addr}/square/12"))
        .send()
        .await
        .unwrap();
    assert_eq!(next.status(), StatusCode::OK);
    assert_eq!(next.text().await.unwrap(), "144");
    cpu_lane_runs_together(CPU_THREADS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_panic_resumes_in_the_awaiting_task_with_its_message() {
    install_lanes();
    let _pool = POOL.lock().await;
    let panic = tokio::spawn(explode()).await.unwrap_err().into_panic();
    assert_eq!(
        panic.downcast_ref::<&str>(),
        Some(&"the model weights are corrupt")
    );
}

#[lanes::io_bound]
async fn health() -> &'static str {
    "ok"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_while_every_cpu_thread_is_busy() {
    install_lanes();
    let _pool = POOL.lock().await;
    let addr = serve(Router::new().route("/health", get(health))).await;
    let (open, busy) = occupy_cpu_threads().await;
    let response = tokio::time::timeout(
        Duration::from_secs(10),
        reqwest::get(format!("http://{addr}/health")),
    )
    .await
    .expect("/health answered while the CPU lane was saturated")
    .unwrap();
    assert_eq!(response.text().await.unwrap(), "ok");
    assert!(
        !open.load(Ordering::SeqCst),
        "the CPU threads were still busy"
    );
    open.store(true, Ordering::SeqCst);
    for call in busy {
        call.await.unwrap();
    }
}

static ABANDONED_RAN: AtomicBool = AtomicBool::new(false);

#[lanes::cpu_bound]
fn abandoned() {
    ABANDONED_RAN.store(true, Ordering::SeqCst);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn work_whose_caller_left_before_it_started_is_skipped() {
    install_lanes();
    let _pool = POOL.lock().await;
    let (open, busy) = occupy_cpu_threads().await;
    // The caller gives up while the call waits for a thread.
    let gave_up = tokio::time::timeout(Duration::from_millis(20), abandoned()).await;
    assert!(gave_up.is_err());
    open.store(true, Ordering::SeqCst);
    for call in busy {
        call.await.unwrap();
    }
    // Calls queued after the abandoned one have run, so it had its turn.
    for _ in 0..CPU_THREADS * 4 {
        lanes::run_cpu(|| ()).await;
    }
    cpu_lane_runs_together(CPU_THREADS).await;
    assert!(!ABANDONED_RAN.load(Ordering::SeqCst));
}

fn cpu_places_taken() -> usize {
    lanes::stats()
        .lane(lanes::Lane::CpuBound)
        .admitted
        .expect("the CPU lane has a bound")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_gives_its_place_back_as_it_returns_or_when_its_body_ends() {
    install_lanes();
    let _pool = POOL.lock().await;
    // A caller that has its result has given its place back.
    for _ in 0..100 {
        lanes::run_cpu(|| ()).await;
        assert_eq!(cpu_places_taken(), 0);
    }
    // Callers that leave while their bodies run do not free their places:
    // the bodies still hold the threads.
    let (open, busy) = occupy_cpu_threads().await;
    for call in &busy {
        call.abort();
    }
    for call in busy {
        assert!(call.await.unwrap_err().is_cancelled());
    }
    assert_eq!(cpu_places_taken(), CPU_THREADS);
    open.store(true, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while cpu_places_taken() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the bodies returned, but their places were not given back"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
