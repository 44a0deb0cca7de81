//! Helpers shared by the integration tests: a real axum server on a free
//! loopback port, a gate that holds lane calls, and a probe of the CPU
//! lane's threads.

use std::net::SocketAddr;
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::Duration;

pub mod stores;

/// Serves `app` on 127.0.0.1 on a free port, on the current runtime, and
/// returns its address.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    tokio::spawn(async move {
        axum::serve(listener, app)
            .await
            .expect("the test server runs")
    });
    addr
}

/// Runs `threads` CPU-lane calls that can only finish together, so it
/// returns only while the CPU lane has (at least) that many threads free.
/// Panics after 10 s otherwise.
pub async fn cpu_lane_runs_together(threads: usize) {
    let barrier = Arc::new(Barrier::new(threads));
    let calls: Vec<_> = (0..threads)
        .map(|_| {
            let barrier = barrier.clone();
            tokio::spawn(lanes::run_cpu(move || {
                barrier.wait();
            }))
        })
        .collect();
    for call in calls {
        tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("the CPU lane ran every call at once")
            .expect("the call does not panic");
    }
}

/// Holds the pool threads that pass it until a test opens it, so that a
/// lane stays full for exactly as long as the test wants.
#[derive(Debug)]
pub struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    pub const fn closed() -> Gate {
        Gate {
            open: Mutex::new(false),
            opened: Condvar::new(),
        }
    }

    /// Blocks the calling thread until the gate is open, or 10 s have
    /// passed (a failed test must not hang its runtime's shutdown).
    pub fn pass(&self) {
        let open = self.open.lock().expect("the gate's lock is never poisoned");
        let waited = self
            .opened
            .wait_timeout_while(open, Duration::from_secs(10), |open| !*open);
        drop(waited.expect("the gate's lock is never poisoned"));
    }

    pub fn set(&self, open: bool) {
        *self.open.lock().expect("the gate's lock is never poisoned") = open;
        self.opened.notify_all();
    }
}

/// `DATABASE_URL`, or `None` with the skip of `suite` said aloud. Under
/// `CI=true` a missing URL fails: there the PostgreSQL suites must run.
pub fn database_url(suite: &str) -> Option<String> {
    match std::env::var("DATABASE_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("CI=true but DATABASE_URL is not set: {suite} must run in CI")
        }
        Err(_) => {
            // Through `io::stderr()`, which the test harness does not
            // capture (it captures `eprintln!`): a skip must be seen.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: {suite}; set DATABASE_URL=postgres://... to run it"
            );
            None
        }
    }
}

/// A schema name no other test process uses.
pub fn test_schema() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("lanes_test_{}_{n}", std::process::id())
}

/// Drops the schemas this process made with [`test_schema`].
pub async fn drop_test_schemas(url: &str) {
    use sqlx::Connection;
    let mut connection = sqlx::PgConnection::connect(url)
        .await
        .expect("PostgreSQL at DATABASE_URL");
    let prefix = format!("lanes_test_{}_%", std::process::id());
    let schemas: Vec<(String,)> =
        sqlx::query_as("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE $1")
            .bind(prefix)
            .fetch_all(&mut connection)
            .await
            .expect("the schemas are listed");
    for (schema,) in schemas {
        // The names come from `test_schema`: letters, digits and `_`.
        sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
            .execute(&mut connection)
            .await
            .expect("the schema is dropped");
    }
}

/// Workers that notice new jobs and retry within tens of milliseconds, so
/// that job tests run fast.
pub fn fast_workers() -> lanes::jobs::WorkerConfig {
    lanes::jobs::WorkerConfig::default()
        .concurrency(4)
        .idle_wait(Duration::from_millis(50))
        .backoff(Duration::from_millis(20), Duration::from_millis(100))
}

/// Waits (up to 10 s) until the job reaches a final state, and returns it.
pub async fn ended(store: &lanes::jobs::Store, id: lanes::jobs::JobId) -> lanes::jobs::Job {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let job = store.get(id).await.unwrap().expect("the job exists");
        if job.state.is_final() || std::time::Instant::now() > deadline {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Checks the answer of a handler that enqueued a job (`202 Accepted`,
/// `Location: /jobs/{id}`, `{"id": ...}`) and returns the id and location.
pub async fn accepted(response: reqwest::Response) -> (lanes::jobs::JobId, String) {
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"]
        .to_str()
        .expect("a text Location")
        .to_owned();
    let body: serde_json::Value = response.json().await.expect("a JSON body");
    let id = body["id"].as_str().expect("an id in the body");
    assert_eq!(location, format!("/jobs/{id}"));
    (id.parse().expect("a job id"), location)
}

/// The store `#[background]` fns use in this test process: the default
/// one, a memory store set once through `Config`.
pub fn default_store() -> lanes::jobs::Store {
    static STORE: std::sync::OnceLock<lanes::jobs::Store> = std::sync::OnceLock::new();
    STORE
        .get_or_init(|| {
            let store = lanes::jobs::Store::memory(1_000);
            lanes::Config::new()
                .job_store(store.clone())
                .install()
                .expect("installed once, before any lane ran");
            store
        })
        .clone()
}

/// A job body that declines the card the first time it runs in this test
/// binary, and charges it after: a job that dies, then succeeds retried.
pub async fn charge_declined_once(
    _: lanes::jobs::JobContext,
    card: String,
) -> Result<String, String> {
    static CHARGED_ONCE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if CHARGED_ONCE.swap(true, std::sync::atomic::Ordering::SeqCst) {
        Ok(format!("charged {card}"))
    } else {
        Err(format!("card {card} was declined"))
    }
}
