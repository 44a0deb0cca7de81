//! A worker process for the job tests that need several processes or a
//! killed one: `jobs_child <store> <log> <enqueue count>`, where `<store>` is
//! `sqlite:<path>` or `postgres:<schema>` (the URL from `DATABASE_URL`).
//!
//! With `flood` for the count, it runs no worker: 16 tasks enqueue `record`
//! jobs until the process is killed, appending each answered job's id to
//! `<log>` once its enqueue returns.
//!
//! It enqueues the jobs of the `#[background]` fn `record` (if any are
//! asked for), then works the queue until
//! every job in the store has ended, appending `<pid> start <n>` and
//! `<pid> done <n>` lines to `<log>` around each job's 5 ms of work. Its
//! lease is 1 s, or `JOBS_CHILD_LEASE_MS`.

use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

use lanes::jobs::{JobContext, Registry, Store, WorkerConfig, Workers};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [store, log, enqueue] = args.as_slice() else {
        panic!("usage: jobs_child <sqlite:PATH|postgres:SCHEMA> <log> <jobs to enqueue|flood>");
    };
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    if enqueue == "flood" {
        runtime.block_on(flood(store, log.clone()));
        return;
    }
    let enqueue: u64 = enqueue.parse().expect("a job count");
    runtime.block_on(work(store, log.clone(), enqueue));
}

async fn open(store: &str) -> Store {
    if let Some(path) = store.strip_prefix("sqlite:") {
        return Store::sqlite(path).await.expect("the SQLite store opens");
    }
    let schema = store
        .strip_prefix("postgres:")
        .expect("sqlite: or postgres:");
    let url = std::env::var("DATABASE_URL").expect("DATABASE_URL for a postgres: store");
    Store::postgres(&url, schema)
        .await
        .expect("the PostgreSQL store opens")
}

/// Where `record` appends its lines.
static LOG: OnceLock<String> = OnceLock::new();

/// The job every test enqueues: a `#[background]` fn, found by the workers
/// through `Registry::registered()`.
#[lanes::background(kind = "record", retries = 4)]
async fn record(n: u64) -> Result<(), String> {
    #[lanes::allow_blocking("one O_APPEND write to a local log: the test's record of what ran")]
    line("start", n);
    tokio::time::sleep(Duration::from_millis(5)).await;
    #[lanes::allow_blocking("one O_APPEND write to a local log: the test's record of what ran")]
    line("done", n);
    Ok(())
}

/// A job that runs until it is cancelled, logged as `start 0` when it
/// begins.
#[lanes::background(kind = "until_cancelled")]
async fn until_cancelled(job: JobContext) {
    #[lanes::allow_blocking("one O_APPEND write to a local log: the test's record of what ran")]
    line("start", 0);
    job.cancelled().await;
}

fn line(what: &str, n: u64) {
    let log = LOG.get().expect("the log is set before the workers start");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("the log opens");
    // One write per line: O_APPEND keeps lines whole across processes.
    file.write_all(format!("{} {what} {n}\n", std::process::id()).as_bytes())
        .expect("the log is written");
}

async fn work(store: &str, log: String, enqueue: u64) {
    LOG.set(log).expect("set once");
    let store = open(store).await;
    for n in 0..enqueue {
        record(n).on(&store).await.expect("enqueued");
    }
    let lease =
        std::env::var("JOBS_CHILD_LEASE_MS").map_or(1_000, |ms| ms.parse().expect("a lease in ms"));
    let config = WorkerConfig::default()
        .concurrency(8)
        .lease(Duration::from_millis(lease))
        .idle_wait(Duration::from_millis(50));
    let workers =
        Workers::start(store.clone(), Registry::registered(), config).expect("the workers start");
    println!("working");
    while store.unfinished().await.expect("the store answers") > 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    workers.shutdown(Duration::from_secs(5)).await;
}

/// Enqueues from 16 tasks at once, so that the store writes them in
/// batches, until killed; each id is logged after its enqueue answered.
async fn flood(store: &str, log: String) {
    let store = open(store).await;
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("the log opens"),
    ));
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let (store, acknowledged) = (store.clone(), acknowledged.clone());
            tokio::spawn(async move {
                for n in (task..).step_by(16) {
                    let lanes::jobs::Accepted(id) = record(n).on(&store).await.expect("enqueued");
                    writeln!(acknowledged.lock().unwrap(), "{id}").expect("the log is written");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("never ends");
    }
}
