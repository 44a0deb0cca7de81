//! `#[background]` fns: a handler answers `202` with the job's id, the job
//! kind registered itself, and a worker runs it with the options the
//! attribute gave.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::Path;
use axum::routing::post;
use lanes::jobs::{JobContext, JobState, NewJob, Store, Workers};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Welcome {
    email: String,
    name: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct Receipt {
    to: String,
    subject: String,
}

#[derive(Debug)]
struct MailError(String);

impl std::fmt::Display for MailError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the mail server refused: {}", self.0)
    }
}

/// A handler and a job kind at once: the request's JSON body is stored,
/// and the job reports progress and returns a receipt.
#[lanes::background(queue = "emails", retries = 1, timeout = "5s")]
async fn send_welcome(job: JobContext, Json(welcome): Json<Welcome>) -> Result<Receipt, MailError> {
    if welcome.email.ends_with("@invalid") {
        return Err(MailError(format!("no mailbox {}", welcome.email)));
    }
    job.progress(50, "rendered");
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(Receipt {
        to: welcome.email,
        subject: format!("Welcome, {}!", welcome.name),
    })
}

/// A synchronous job: it runs on the blocking lane.
#[lanes::background]
fn render_report(Path((team, year)): Path<(String, u32)>) -> Result<String, String> {
    std::thread::sleep(Duration::from_millis(5));
    Ok(format!("{team}-{year}.pdf"))
}

static TICKS: AtomicU32 = AtomicU32::new(0);

/// No result, no context, a mutable argument.
#[lanes::background(kind = "tick", timeout = "100ms")]
async fn tick(mut times: u32) {
    while times > 0 {
        TICKS.fetch_add(1, Ordering::Relaxed);
        times -= 1;
    }
    if TICKS.load(Ordering::Relaxed) > 1_000 {
        // Sleeps past the timeout: the attempt is stopped.
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// The tests share the default store, so one at a time runs workers on it.
static WORKERS_ON_THE_DEFAULT_STORE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn a_background_handler_answers_202_and_a_worker_runs_the_job() {
    let _alone = WORKERS_ON_THE_DEFAULT_STORE.lock().await;
    let store = lanes_tests::default_store();
    let app = axum::Router::new()
        .route("/welcome", post(send_welcome))
        .route("/reports/{team}/{year}", post(render_report))
        .merge(lanes::jobs::router(store.clone()));
    let addr = lanes_tests::serve(app).await;
    let client = reqwest::Client::new();

    let response = client
        .post(format!("http://{addr}/welcome"))
        .json(&serde_json::json!({"email": "ada@example.com", "name": "Ada"}))
        .send()
        .await
        .unwrap();
    let (id, location) = lanes_tests::accepted(response).await;

    // Queued with the attribute's options, before any worker runs.
    let job = store.get(id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued);
    assert_eq!(job.kind, "background::send_welcome");
    assert_eq!(job.queue, "emails");
    assert_eq!(job.max_attempts, 2);

    // The workers find the kind by itself, and its queue.
    let workers = lanes::jobs::start_workers(lanes_tests::fast_workers())
        .await
        .unwrap();
    let job = lanes_tests::ended(&store, id).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert_eq!(job.progress, 50);
    assert_eq!(job.message.as_deref(), Some("rendered"));
    assert_eq!(
        job.result,
        Some(serde_json::json!({"to": "ada@example.com", "subject": "Welcome, Ada!"}))
    );
    let status: serde_json::Value = client
        .get(format!("http://{addr}{location}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["state"], "succeeded");
    assert_eq!(status["result"]["subject"], "Welcome, Ada!");

    // An error is retried once (retries = 1), then the job is dead with it.
    let response = client
        .post(format!("http://{addr}/welcome"))
        .json(&serde_json::json!({"email": "bob@invalid", "name": "Bob"}))
        .send()
        .await
        .unwrap();
    let (id, _) = lanes_tests::accepted(response).await;
    let job = lanes_tests::ended(&store, id).await;
    assert_eq!(job.state, JobState::Dead);
    assert_eq!(job.attempts, 2);
    assert_eq!(
        job.error.as_deref(),
        Some("the mail server refused: no mailbox bob@invalid")
    );

    // A synchronous job runs on the blocking lane, under its own name.
    let response = client
        .post(format!("http://{addr}/reports/core/2026"))
        .send()
        .await
        .unwrap();
    let (id, _) = lanes_tests::accepted(response).await;
    let job = lanes_tests::ended(&store, id).await;
    assert_eq!(job.result, Some(serde_json::json!("core-2026.pdf")));
    let stats = lanes::stats();
    let report = stats
        .handlers
        .iter()
        .find(|h| h.handler == "background::render_report")
        .expect("the job's runs are counted");
    assert_eq!(report.lane, lanes::Lane::Blocking);
    assert_eq!(report.completed, 1);

    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn enqueue_options_timeouts_and_stale_payloads() {
    let _alone = WORKERS_ON_THE_DEFAULT_STORE.lock().await;
    let store = lanes_tests::default_store();
    // Not the default store: `on` sends the job elsewhere.
    let elsewhere = Store::memory(10);
    let accepted = tick(3).on(&elsewhere).await.unwrap();
    assert_eq!(
        elsewhere.get(accepted.0).await.unwrap().unwrap().kind,
        "tick"
    );
    assert!(store.get(accepted.0).await.unwrap().is_none());

    // The same idempotency key: the first job's id, one job.
    let first = tick(1).idempotency_key("tick-once").await.unwrap();
    let again = tick(1).idempotency_key("tick-once").await.unwrap();
    assert_eq!(first, again);

    // Delayed: not due before its time.
    let later = tick(1).run_after(Duration::from_secs(3600)).await.unwrap();
    let job = store.get(later.0).await.unwrap().unwrap();
    assert!(job.run_at > SystemTime::now() + Duration::from_secs(3500));

    // A payload from an older version of the fn: dead at once, the worker
    // goes on with the next job.
    let stale = store
        .enqueue(
            NewJob::new(
                "background::send_welcome",
                serde_json::json!({"welcome": 5}),
            )
            .queue("emails"),
        )
        .await
        .unwrap();

    let workers = Workers::start(
        store.clone(),
        lanes::jobs::Registry::registered(),
        lanes_tests::fast_workers().queues(["default", "emails"]),
    )
    .unwrap();
    assert_eq!(
        lanes_tests::ended(&store, first.0).await.state,
        JobState::Succeeded
    );
    let job = lanes_tests::ended(&store, stale).await;
    assert_eq!(job.state, JobState::Dead);
    assert_eq!(job.attempts, 1);
    let error = job.error.unwrap();
    assert!(
        error.starts_with(
            "the stored argument `welcome` of `background::send_welcome` no longer fits its parameter (did its type change?)"
        ),
        "{error}"
    );

    // Past its 100 ms timeout an attempt stops; with the default two
    // retries, the job ends dead after three.
    TICKS.store(2_000, Ordering::Relaxed);
    let slow = tick(0).await.unwrap();
    let job = lanes_tests::ended(&store, slow.0).await;
    assert_eq!(job.state, JobState::Dead);
    assert_eq!(job.attempts, 3);
    assert_eq!(job.error.as_deref(), Some("timed out after 0.1 s"));
    assert_eq!(
        store.get(later.0).await.unwrap().unwrap().state,
        JobState::Queued
    );

    workers.shutdown(Duration::from_secs(5)).await;
}
