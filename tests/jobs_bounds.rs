//! The job stores' bounds on unfinished jobs, store-wide and per queue:
//! past one, an enqueue is refused with `StoreError::Full`, a handler
//! answers `503` with `Retry-After`, and the refusal is counted; the bound
//! holds under concurrent enqueues from two handles (two instances) on the
//! same data. On memory, on SQLite, and on PostgreSQL when `DATABASE_URL`
//! is set.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use lanes::jobs::{
    Accepted, Bound, Durability, Finish, JobState, NewJob, Retried, Store, StoreError, StoreOptions,
};
use lanes_tests::stores::{Backend, Memory, Postgres, Sqlite};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;

const LEASE: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_store_keeps_its_bounds() {
    suite(Memory::default, "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sqlite_store_keeps_its_bounds() {
    suite(Sqlite::default, "sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_store_keeps_its_bounds() {
    let Some(url) = lanes_tests::database_url("the PostgreSQL job-store bounds") else {
        return;
    };
    suite(|| Postgres::new(&url), "postgres").await;
    lanes_tests::drop_test_schemas(&url).await;
}

/// Each part on a backend of its own, so that each store's file or schema
/// is removed after it; queues are named after the store, since the
/// refusal counter is shared by the tests of this binary.
async fn suite<B: Backend>(make: impl Fn() -> B, store: &str) {
    past_the_store_bound_an_enqueue_is_refused(&make(), store).await;
    past_a_queue_bound_an_enqueue_is_refused(&make(), store).await;
    an_idempotent_repeat_is_never_refused(&make()).await;
    a_dead_job_retried_takes_a_place_again(&make(), store).await;
    a_handler_answers_503_with_retry_after(&make()).await;
    concurrent_enqueues_stay_within_the_store_bound(&make()).await;
    concurrent_enqueues_stay_within_a_queue_bound(&make(), store).await;
    for durability in [Durability::PowerLoss, Durability::ProcessCrash] {
        either_durability_keeps_what_it_answered(&make(), durability).await;
    }
}

fn metrics() -> &'static PrometheusHandle {
    static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();
    METRICS.get_or_init(|| PrometheusBuilder::new().install_recorder().unwrap())
}

/// `lanes_jobs_refused_total{queue, reason="full"}` as the recorder
/// renders it, 0 before the first refusal.
fn refused(queue: &str) -> u64 {
    let rendered = metrics().render();
    let labels = format!("queue=\"{queue}\"");
    rendered
        .lines()
        .filter(|line| line.starts_with("lanes_jobs_refused_total{"))
        .filter(|line| line.contains(&labels) && line.contains("reason=\"full\""))
        .find_map(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

fn job(queue: &str) -> NewJob {
    NewJob::new("export", json!(null)).queue(queue)
}

async fn past_the_store_bound_an_enqueue_is_refused(backend: &impl Backend, store_name: &str) {
    metrics();
    let queue = format!("store_bound_{store_name}");
    let store = backend
        .fresh_with(StoreOptions::new().max_unfinished(3))
        .await;
    for _ in 0..3 {
        store.enqueue(job(&queue)).await.unwrap();
    }
    let before = refused(&queue);
    let error = store.enqueue(job(&queue)).await.unwrap_err();
    assert!(
        matches!(
            error,
            StoreError::Full {
                bound: Bound::Store,
                limit: 3
            }
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "the job store is full: it holds 3 unfinished jobs, its bound; the job was not enqueued: \
         retry once jobs have finished, or raise the bound with `StoreOptions::max_unfinished`"
    );
    assert_eq!(refused(&queue), before + 1, "the refusal is counted");
    // Another queue is refused too: the bound is the store's.
    assert!(matches!(
        store.enqueue(job("elsewhere")).await,
        Err(StoreError::Full { .. })
    ));
    assert_eq!(store.unfinished().await.unwrap(), 3);

    // Running and failed-awaiting-retry jobs keep their place.
    let claimed = store.claim(&queue, "w", LEASE, 2).await.unwrap();
    let retry_at = SystemTime::now() + Duration::from_secs(3600);
    store
        .finish(
            claimed[0].id,
            "w",
            Finish::Retry {
                error: "flaky".to_owned(),
                at: retry_at,
            },
        )
        .await
        .unwrap();
    assert!(store.enqueue(job(&queue)).await.is_err());

    // A finished job frees its place, and so does a cancelled one.
    assert!(
        store
            .finish(claimed[1].id, "w", Finish::Succeeded(None))
            .await
            .unwrap()
    );
    store.enqueue(job(&queue)).await.unwrap();
    assert!(store.enqueue(job(&queue)).await.is_err());
    assert_eq!(
        store.cancel(claimed[0].id).await.unwrap(),
        Some(JobState::Cancelled)
    );
    store.enqueue(job(&queue)).await.unwrap();
    assert_eq!(store.unfinished().await.unwrap(), 3);
    assert_eq!(refused(&queue), before + 3);
}

/// A retry makes a dead job unfinished again: past the queue's bound it is
/// refused as an enqueue is, and once retried it holds its place, which
/// the next enqueue sees (the SQL stores' counts take it into account).
async fn a_dead_job_retried_takes_a_place_again(backend: &impl Backend, store_name: &str) {
    metrics();
    let queue = format!("retries_{store_name}");
    let store = backend
        .fresh_with(StoreOptions::new().queue_max_unfinished(&queue, 2))
        .await;
    let dead = store.enqueue(job(&queue).max_attempts(1)).await.unwrap();
    store.claim(&queue, "w", LEASE, 1).await.unwrap();
    store
        .finish(dead, "w", Finish::Dead { error: "no".into() })
        .await
        .unwrap();
    let waiting = store.enqueue(job(&queue)).await.unwrap();
    store.enqueue(job(&queue)).await.unwrap();
    let before = refused(&queue);
    assert!(
        matches!(
            store.retry(dead).await,
            Err(StoreError::Full {
                bound: Bound::Queue(_),
                limit: 2
            })
        ),
        "the queue holds its bound"
    );
    assert_eq!(refused(&queue), before + 1, "the refusal is counted");
    assert_eq!(
        store.get(dead).await.unwrap().unwrap().state,
        JobState::Dead
    );

    store.cancel(waiting).await.unwrap();
    assert_eq!(store.retry(dead).await.unwrap(), Some(Retried::Queued));
    assert!(
        matches!(
            store.enqueue(job(&queue)).await,
            Err(StoreError::Full { .. })
        ),
        "the retried job holds the place the cancelled one left"
    );
}

async fn past_a_queue_bound_an_enqueue_is_refused(backend: &impl Backend, store_name: &str) {
    metrics();
    let queue = format!("reports_{store_name}");
    // No store bound: only the queue's is counted.
    let store = backend
        .fresh_with(
            StoreOptions::new()
                .unbounded()
                .queue_max_unfinished(&queue, 2),
        )
        .await;
    for _ in 0..2 {
        store.enqueue(job(&queue)).await.unwrap();
    }
    let before = refused(&queue);
    let error = store.enqueue(job(&queue)).await.unwrap_err();
    match &error {
        StoreError::Full {
            bound: Bound::Queue(full),
            limit: 2,
        } => assert_eq!(full, &queue),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        error.to_string(),
        format!(
            "the job queue `{queue}` is full: it holds 2 unfinished jobs, its bound; the job was \
             not enqueued: retry once jobs have finished, or raise the bound with \
             `StoreOptions::queue_max_unfinished`"
        )
    );
    assert_eq!(refused(&queue), before + 1, "the refusal is counted");
    // Other queues are not bound by it.
    for _ in 0..5 {
        store.enqueue(job("default")).await.unwrap();
    }
    // A finished job of the queue frees its place.
    let claimed = store.claim(&queue, "w", LEASE, 1).await.unwrap();
    store.enqueue(job(&queue)).await.unwrap_err();
    let dead = Finish::Dead { error: "no".into() };
    assert!(store.finish(claimed[0].id, "w", dead).await.unwrap());
    store.enqueue(job(&queue)).await.unwrap();
    assert_eq!(store.unfinished().await.unwrap(), 7);
}

async fn an_idempotent_repeat_is_never_refused(backend: &impl Backend) {
    let store = backend
        .fresh_with(
            StoreOptions::new()
                .max_unfinished(2)
                .queue_max_unfinished("keyed", 1),
        )
        .await;
    let first = store
        .enqueue(job("keyed").idempotency_key("invoice-7"))
        .await
        .unwrap();
    store.enqueue(job("default")).await.unwrap();
    assert!(store.enqueue(job("default")).await.is_err());
    // Both bounds are reached; the repeat adds nothing and is answered.
    let repeat = store
        .enqueue(job("keyed").idempotency_key("invoice-7"))
        .await
        .unwrap();
    assert_eq!(repeat, first);
    assert_eq!(store.unfinished().await.unwrap(), 2);
    // A new key is a new job, and is refused.
    assert!(
        store
            .enqueue(job("keyed").idempotency_key("invoice-8"))
            .await
            .is_err()
    );
}

async fn start_export(State(store): State<Store>) -> Result<Accepted, StoreError> {
    Ok(Accepted(store.enqueue(job("default")).await?))
}

async fn a_handler_answers_503_with_retry_after(backend: &impl Backend) {
    let store = backend
        .fresh_with(StoreOptions::new().max_unfinished(1))
        .await;
    let app = Router::new()
        .route("/exports", post(start_export))
        .with_state(store);
    let base = format!("http://{}", lanes_tests::serve(app).await);
    let client = reqwest::Client::new();
    let post = || client.post(format!("{base}/exports")).send();
    lanes_tests::accepted(post().await.unwrap()).await;
    let refused = post().await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(
        refused.text().await.unwrap(),
        "the job queue is full; retry later\n"
    );
}

/// 16 tasks enqueue 8 jobs each, alternating between two handles on the
/// same data; exactly `limit` of them are added.
async fn enqueue_from_two_instances(one: &Store, two: &Store, queue: &str, limit: u64) {
    let tasks: Vec<_> = (0..16)
        .map(|task| {
            let store = if task % 2 == 0 { one } else { two }.clone();
            let queue = queue.to_owned();
            tokio::spawn(async move {
                let mut added = 0;
                for _ in 0..8 {
                    match store.enqueue(job(&queue)).await {
                        Ok(_) => added += 1,
                        Err(StoreError::Full { .. }) => {}
                        Err(other) => panic!("{other}"),
                    }
                }
                added
            })
        })
        .collect();
    let mut added = 0;
    for task in tasks {
        added += task.await.unwrap();
    }
    assert_eq!(added, limit, "every enqueue under the bound is added");
    assert_eq!(one.unfinished().await.unwrap(), limit);
}

async fn concurrent_enqueues_stay_within_the_store_bound(backend: &impl Backend) {
    let options = StoreOptions::new().max_unfinished(40);
    let one = backend.fresh_with(options.clone()).await;
    let two = backend.reopen_with(options).await;
    enqueue_from_two_instances(&one, &two, "default", 40).await;
}

async fn concurrent_enqueues_stay_within_a_queue_bound(backend: &impl Backend, store_name: &str) {
    let queue = format!("crowded_{store_name}");
    let options = StoreOptions::new().queue_max_unfinished(&queue, 25);
    let one = backend.fresh_with(options.clone()).await;
    let two = backend.reopen_with(options).await;
    enqueue_from_two_instances(&one, &two, &queue, 25).await;
}

/// Each setting opens, enqueues and cancels, and another handle reads what
/// was answered.
async fn either_durability_keeps_what_it_answered(backend: &impl Backend, durability: Durability) {
    let options = StoreOptions::new().durability(durability);
    let store = backend.fresh_with(options.clone()).await;
    let kept = store.enqueue(job("default")).await.unwrap();
    let cancelled = store.enqueue(job("default")).await.unwrap();
    assert_eq!(
        store.cancel(cancelled).await.unwrap(),
        Some(JobState::Cancelled)
    );
    let other = backend.reopen_with(options).await;
    let states = (
        other.get(kept).await.unwrap().unwrap().state,
        other.get(cancelled).await.unwrap().unwrap().state,
    );
    assert_eq!(
        states,
        (JobState::Queued, JobState::Cancelled),
        "{durability:?}"
    );
}
