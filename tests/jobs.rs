//! The job stores, and the workers on them, behave alike: one suite, run on
//! memory, on SQLite, and on PostgreSQL when `DATABASE_URL` is set (CI sets
//! it, and there a missing database fails the suite instead of skipping it).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use lanes::jobs::{
    Cancelled, Finish, JobContext, JobId, JobQuery, JobState, Lease, NewJob, NextClaim, Registry,
    Retried, Store, StoreError, Workers,
};
use lanes_tests::stores::{Backend, Memory, Postgres, Sqlite};
use serde_json::json;

const LEASE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn the_memory_store_passes_the_suite() {
    suite(&Memory::default()).await;
}

#[tokio::test]
async fn the_sqlite_store_passes_the_suite() {
    suite(&Sqlite::default()).await;
}

#[tokio::test]
async fn the_postgres_store_passes_the_suite() {
    let Some(url) = lanes_tests::database_url("the PostgreSQL job-store suite") else {
        return;
    };
    suite(&Postgres::new(&url)).await;
    lanes_tests::drop_test_schemas(&url).await;
}

/// The error a test's trigger raises for a job of kind `poison`.
const REFUSED: &str = "refused by the test";

/// Enqueues 40 jobs at once, every fifth of kind `poison`, which the
/// database refuses: every enqueue is answered, every answered id is
/// stored and every refused one is not, and the store goes on working.
/// Returns how many plain jobs were refused beside the poison ones.
async fn every_enqueue_of_a_failing_batch_is_answered(store: &Store) -> usize {
    let enqueues = (0..40).map(|n| {
        let kind = if n % 5 == 0 { "poison" } else { "mail" };
        store.enqueue(NewJob::new(kind, json!(n)))
    });
    let answers = futures::future::join_all(enqueues).await;
    let mut plain_refused = 0;
    for (n, answer) in answers.iter().enumerate() {
        match answer {
            Ok(id) => {
                assert_ne!(n % 5, 0, "poison job {n} was enqueued");
                assert!(
                    store.get(*id).await.unwrap().is_some(),
                    "job {n} answered but not stored"
                );
            }
            Err(StoreError::Database(why)) => {
                assert!(why.contains(REFUSED), "{why}");
                plain_refused += usize::from(n % 5 != 0);
            }
            Err(other) => panic!("job {n}: {other}"),
        }
    }
    let stored = answers.iter().filter(|answer| answer.is_ok()).count();
    assert_eq!(store.unfinished().await.unwrap(), stored as u64);
    store
        .enqueue(NewJob::new("mail", json!("after")))
        .await
        .unwrap();
    plain_refused
}

/// SQLite writes each call of a batch in a savepoint of its own: one
/// refused enqueue fails alone.
#[tokio::test]
async fn a_sqlite_batch_fails_only_the_writes_that_failed() {
    let backend = Sqlite::default();
    let store = backend.fresh().await;
    rusqlite::Connection::open(backend.path())
        .unwrap()
        .execute_batch(&format!(
            "CREATE TRIGGER refuse BEFORE INSERT ON lanes_jobs WHEN NEW.kind = 'poison' \
             BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END;"
        ))
        .unwrap();
    assert_eq!(
        every_enqueue_of_a_failing_batch_is_answered(&store).await,
        0
    );
}

/// PostgreSQL writes a batch of enqueues as one statement: a refused row
/// fails its batch, and every enqueue of it hears so.
#[tokio::test]
async fn a_postgres_batch_that_fails_answers_every_write() {
    use sqlx::Connection;
    let Some(url) = lanes_tests::database_url("the PostgreSQL job-store suite") else {
        return;
    };
    let backend = Postgres::new(&url);
    let store = backend.fresh().await;
    let schema = backend.schema();
    let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
    // The schema's name is the test's own: letters, digits and `_`.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE FUNCTION {schema}.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN IF NEW.kind = 'poison' THEN RAISE EXCEPTION '{REFUSED}'; END IF; RETURN NEW; END $$; \
         CREATE TRIGGER refuse BEFORE INSERT ON {schema}.lanes_jobs \
         FOR EACH ROW EXECUTE FUNCTION {schema}.refuse_poison();"
    )))
    .execute(&mut connection)
    .await
    .unwrap();
    every_enqueue_of_a_failing_batch_is_answered(&store).await;
    // Its own schema only: the suite's may still be in use.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut connection)
        .await
        .unwrap();
}

/// The job table and its claim index as lanes made them before priorities.
const TABLE_BEFORE_PRIORITIES: &str = "CREATE TABLE lanes_jobs (id TEXT PRIMARY KEY, \
     kind TEXT NOT NULL, queue TEXT NOT NULL, state TEXT NOT NULL, payload TEXT NOT NULL, \
     attempts BIGINT NOT NULL, max_attempts BIGINT NOT NULL, timeout_ms BIGINT NOT NULL, \
     run_at BIGINT NOT NULL, lease_until BIGINT, worker TEXT, progress BIGINT NOT NULL, \
     message TEXT, error TEXT, result TEXT, cancel_requested BIGINT NOT NULL, \
     idempotency_key TEXT UNIQUE, created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL, \
     finished_at BIGINT); \
     CREATE INDEX lanes_jobs_due ON lanes_jobs (queue, run_at) WHERE state IN ('queued', 'failed'); \
     INSERT INTO lanes_jobs VALUES ('5f0c6ab4-8e8f-4d36-9d4e-6d3c1b0f2a11', 'mail', 'default', \
     'queued', '1', 0, 3, 300000, 0, NULL, NULL, 0, NULL, NULL, NULL, 0, NULL, 0, 0, NULL);";

/// A store opened on the tables of an earlier version adds the priority
/// column and its index, and keeps the jobs it finds.
async fn an_earlier_store_gains_priorities(store: &Store) {
    let old: JobId = "5f0c6ab4-8e8f-4d36-9d4e-6d3c1b0f2a11".parse().unwrap();
    assert_eq!(store.get(old).await.unwrap().unwrap().priority, 0);
    let urgent = store
        .enqueue(NewJob::new("mail", json!(2)).priority(1))
        .await
        .unwrap();
    assert_eq!(claim_one(store, "default").await, Some(urgent));
    assert_eq!(claim_one(store, "default").await, Some(old));
}

#[tokio::test]
async fn a_sqlite_store_made_before_priorities_gains_them() {
    let path =
        std::env::temp_dir().join(format!("{}.db", lanes_tests::stores::unique("lanes_old")));
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(TABLE_BEFORE_PRIORITIES)
        .unwrap();
    an_earlier_store_gains_priorities(&Store::sqlite(&path).await.unwrap()).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

#[tokio::test]
async fn a_postgres_store_made_before_priorities_gains_them() {
    use sqlx::Connection;
    let Some(url) = lanes_tests::database_url("the PostgreSQL job-store suite") else {
        return;
    };
    let schema = lanes_tests::test_schema();
    let mut connection = sqlx::PgConnection::connect(&url).await.unwrap();
    // The schema's name is the test's own: letters, digits and `_`.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE SCHEMA {schema}; SET search_path TO {schema}; {TABLE_BEFORE_PRIORITIES}"
    )))
    .execute(&mut connection)
    .await
    .unwrap();
    an_earlier_store_gains_priorities(&Store::postgres(&url, &schema).await.unwrap()).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
        .execute(&mut connection)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_full_memory_store_refuses_with_an_error() {
    let store = Store::memory(2);
    store.enqueue(NewJob::new("a", json!(1))).await.unwrap();
    store.enqueue(NewJob::new("a", json!(2))).await.unwrap();
    let refused = store.enqueue(NewJob::new("a", json!(3))).await.unwrap_err();
    assert!(matches!(
        refused,
        StoreError::Full {
            bound: lanes::jobs::Bound::Store,
            limit: 2
        }
    ));
    assert_eq!(
        refused.to_string(),
        "the job store is full: it holds 2 unfinished jobs, its bound; the job was not enqueued: \
         retry once jobs have finished, or raise the bound with `StoreOptions::max_unfinished`"
    );
    // A finished job frees its place.
    let claimed = store.claim("default", "w", LEASE, 1).await.unwrap();
    store
        .finish(claimed[0].id, "w", Finish::Succeeded(None))
        .await
        .unwrap();
    store.enqueue(NewJob::new("a", json!(3))).await.unwrap();
}

/// A store kept across runtimes (a static, or one shared by `#[tokio::test]`s)
/// goes on working when the runtime it first wrote from has shut down.
#[test]
fn a_sqlite_store_outlives_the_runtime_it_first_wrote_from() {
    let backend = Sqlite::default();
    let runtime = || tokio::runtime::Runtime::new().unwrap();
    let (store, first) = runtime().block_on(async {
        let store = backend.fresh().await;
        let id = store.enqueue(NewJob::new("a", json!(1))).await.unwrap();
        (store, id)
    });
    runtime().block_on(async {
        let second = store.enqueue(NewJob::new("a", json!(2))).await.unwrap();
        assert_ne!(first, second);
        let claimed = store.claim("default", "w", LEASE, 10).await.unwrap();
        assert_eq!(claimed.len(), 2);
        for job in claimed {
            assert!(
                store
                    .finish(job.id, "w", Finish::Succeeded(None))
                    .await
                    .unwrap()
            );
        }
        assert_eq!(store.unfinished().await.unwrap(), 0);
    });
}

async fn suite(backend: &impl Backend) {
    runs_and_keeps_the_result(&backend.fresh().await).await;
    retries_after_a_failure_then_dies(&backend.fresh().await).await;
    an_idempotency_key_returns_the_first_job(&backend.fresh().await).await;
    higher_priorities_are_claimed_first(&backend.fresh().await).await;
    pages_hold_every_job_once_while_jobs_are_added(&backend.fresh().await).await;
    a_dead_job_retried_runs_again_and_can_succeed(&backend.fresh().await).await;
    counts_by_state_and_deletes_only_ended_jobs(&backend.fresh().await).await;
    concurrent_writes_each_get_their_own_answer(&backend.fresh().await).await;
    a_finish_claims_the_next_job_in_the_same_call(&backend.fresh().await).await;
    finishes_made_at_once_claim_distinct_jobs(&backend.fresh().await).await;
    a_delayed_job_waits_its_time(&backend.fresh().await).await;
    a_lost_lease_hands_the_job_to_another_worker(&backend.fresh().await).await;
    cancels_waiting_and_running_jobs(&backend.fresh().await).await;
    an_enqueue_wakes_a_waiting_worker(&backend.fresh().await).await;
    two_instances_never_claim_a_job_twice(&backend.fresh().await, &backend.reopen().await).await;
    workers_run_jobs_and_keep_results(&backend.fresh().await).await;
    a_busy_queue_leaves_slots_to_another(&backend.fresh().await).await;
    workers_retry_with_backoff_then_the_job_dies(&backend.fresh().await).await;
    workers_turn_timeouts_panics_and_bad_payloads_into_errors(&backend.fresh().await).await;
    workers_stop_a_cancelled_job_at_once(&backend.fresh().await).await;
    a_timed_out_sync_attempt_never_overlaps_its_retry(&backend.fresh().await).await;
    shutdown_lets_running_jobs_finish_and_leaves_the_rest_queued(&backend.fresh().await).await;
    shutdown_releases_the_jobs_still_running_at_its_deadline(
        &backend.fresh().await,
        &backend.reopen().await,
    )
    .await;
}

/// Whether `worker` finds no job due on `queue` (a claim that takes none).
async fn nothing_due(store: &Store, queue: &str, worker: &str) -> bool {
    store
        .claim(queue, worker, LEASE, 10)
        .await
        .unwrap()
        .is_empty()
}

async fn runs_and_keeps_the_result(store: &Store) {
    let id = store
        .enqueue(NewJob::new("export", json!({"user": 7})).queue("exports"))
        .await
        .unwrap();
    let waiting = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        (waiting.state, waiting.attempts, waiting.kind.as_str()),
        (JobState::Queued, 0, "export")
    );
    // Another queue's worker does not see it.
    assert!(nothing_due(store, "default", "w1").await);

    let claimed = store.claim("exports", "w1", LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].id, claimed[0].attempt), (id, 1));
    assert_eq!(claimed[0].payload, json!({"user": 7}));
    assert!(nothing_due(store, "exports", "w2").await);

    assert!(
        store
            .progress(id, "w1", 40, Some("rendering"))
            .await
            .unwrap()
    );
    assert!(
        !store.progress(id, "w2", 90, None).await.unwrap(),
        "only the holder reports"
    );
    let running = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        (running.state, running.progress, running.message.as_deref()),
        (JobState::Running, 40, Some("rendering"))
    );

    assert!(
        store
            .finish(id, "w1", Finish::Succeeded(Some(json!({"rows": 3}))))
            .await
            .unwrap()
    );
    let done = store.get(id).await.unwrap().unwrap();
    assert_eq!(done.state, JobState::Succeeded);
    assert_eq!(done.result, Some(json!({"rows": 3})));
    assert!(done.finished_at.is_some());
    // The status never shows the job's arguments.
    let shown = serde_json::to_value(&done).unwrap();
    assert!(shown.get("payload").is_none(), "{shown}");
    assert!(!shown.to_string().contains("\"user\""), "{shown}");
    assert!(
        !store
            .finish(id, "w1", Finish::Succeeded(None))
            .await
            .unwrap(),
        "finished once"
    );
}

async fn retries_after_a_failure_then_dies(store: &Store) {
    let id = store
        .enqueue(NewJob::new("flaky", json!(null)).max_attempts(2))
        .await
        .unwrap();
    let first = store.claim("default", "w", LEASE, 1).await.unwrap();
    let retry_at = SystemTime::now() + Duration::from_millis(300);
    store
        .finish(
            id,
            "w",
            Finish::Retry {
                error: "timed out".into(),
                at: retry_at,
            },
        )
        .await
        .unwrap();
    let failed = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        (failed.state, failed.error.as_deref()),
        (JobState::Failed, Some("timed out"))
    );
    assert_eq!(first[0].attempt, 1);
    assert!(
        nothing_due(store, "default", "w").await,
        "not before its time"
    );

    tokio::time::sleep(Duration::from_millis(350)).await;
    let second = store.claim("default", "w", LEASE, 1).await.unwrap();
    assert_eq!((second[0].id, second[0].attempt), (id, 2));
    store
        .finish(
            id,
            "w",
            Finish::Dead {
                error: "refused by the mail server".into(),
            },
        )
        .await
        .unwrap();
    let dead = store.get(id).await.unwrap().unwrap();
    assert_eq!((dead.state, dead.attempts), (JobState::Dead, 2));
    assert_eq!(dead.error.as_deref(), Some("refused by the mail server"));
}

async fn an_idempotency_key_returns_the_first_job(store: &Store) {
    let first = store
        .enqueue(NewJob::new("charge", json!(1)).idempotency_key("order-42"))
        .await
        .unwrap();
    let again = store
        .enqueue(NewJob::new("charge", json!(2)).idempotency_key("order-42"))
        .await
        .unwrap();
    assert_eq!(first, again);
    let claimed = store.claim("default", "w", LEASE, 10).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].payload, json!(1));
}

/// The id of the one job a claim of `limit` 1 on `queue` takes, if any.
async fn claim_one(store: &Store, queue: &str) -> Option<JobId> {
    let claimed = store.claim(queue, "w", LEASE, 1).await.unwrap();
    assert!(claimed.len() <= 1);
    claimed.first().map(|job| job.id)
}

async fn higher_priorities_are_claimed_first(store: &Store) {
    let enqueue =
        |priority: i16| store.enqueue(NewJob::new("mail", json!(priority)).priority(priority));
    let low = enqueue(0).await.unwrap();
    let high = enqueue(5).await.unwrap();
    let urgent_later = store
        .enqueue(
            NewJob::new("mail", json!("later"))
                .priority(9)
                .run_after(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    let middle = enqueue(1).await.unwrap();
    let below = enqueue(-3).await.unwrap();
    assert_eq!(store.get(high).await.unwrap().unwrap().priority, 5);

    assert_eq!(claim_one(store, "default").await, Some(high));
    // A finish's claim takes the next by priority too (PostgreSQL fuses
    // the two in one statement).
    let (_, next) = store
        .finish_and_claim(
            high,
            "w",
            Finish::Succeeded(None),
            NextClaim::new("default", "w", LEASE, 1),
        )
        .await
        .unwrap();
    assert_eq!(next.iter().map(|job| job.id).collect::<Vec<_>>(), [middle]);
    assert_eq!(claim_one(store, "default").await, Some(low));
    assert_eq!(claim_one(store, "default").await, Some(below));
    // The urgent job is not due: a priority never runs a job early.
    assert_eq!(claim_one(store, "default").await, None);
    assert_eq!(
        store.get(urgent_later).await.unwrap().unwrap().state,
        JobState::Queued
    );
}

/// Pages are cut by (creation time, id): paging while jobs are added shows
/// every job that was there once, newest first, and filters hold.
async fn pages_hold_every_job_once_while_jobs_are_added(store: &Store) {
    let mut there = Vec::new();
    for n in 0..25 {
        let kind = if n % 2 == 0 { "even" } else { "odd" };
        let queue = if n % 5 == 0 { "fifths" } else { "default" };
        there.push(
            store
                .enqueue(NewJob::new(kind, json!(n)).queue(queue))
                .await
                .unwrap(),
        );
    }
    let mut seen = Vec::new();
    let mut query = JobQuery::new().limit(10);
    let mut pages = 0;
    loop {
        let page = store.list(&query).await.unwrap();
        pages += 1;
        assert!(page.jobs.len() <= 10);
        seen.extend(page.jobs.iter().map(|job| {
            let millis = job
                .created_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap();
            (millis.as_millis(), job.id)
        }));
        // Added while paging: newer than every page's jobs.
        store
            .enqueue(NewJob::new("meanwhile", json!(pages)))
            .await
            .unwrap();
        let Some(next) = page.next else { break };
        query = query.after(next);
    }
    let ids: Vec<JobId> = seen.iter().map(|(_, id)| *id).collect();
    let distinct: HashSet<JobId> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "a job was listed twice");
    for id in &there {
        assert!(distinct.contains(id), "job {id} was never listed");
    }
    let mut newest_first = seen.clone();
    newest_first.sort_by(|a, b| b.cmp(a));
    assert_eq!(
        seen.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
        newest_first.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
        "pages are newest first"
    );
    assert!(pages >= 3, "25 jobs by 10 take three pages, not {pages}");

    let odd_fifths = store
        .list(&JobQuery::new().queue("fifths").kind("odd"))
        .await
        .unwrap();
    assert_eq!(odd_fifths.jobs.len(), 2, "jobs 5 and 15");
    assert!(odd_fifths.next.is_none());
    let id = claim_one(store, "fifths").await.unwrap();
    store
        .finish(id, "w", Finish::Dead { error: "no".into() })
        .await
        .unwrap();
    let dead = store
        .list(&JobQuery::new().state(JobState::Dead))
        .await
        .unwrap();
    assert_eq!(dead.jobs.iter().map(|job| job.id).collect::<Vec<_>>(), [id]);

    // By state, page after page (the SQL stores read waiting jobs through
    // the claims' index, not the creation index).
    let queued: u64 = store.counts().await.unwrap().iter().map(|q| q.queued).sum();
    let mut listed = HashSet::new();
    let mut query = JobQuery::new().state(JobState::Queued).limit(7);
    loop {
        let page = store.list(&query).await.unwrap();
        for job in &page.jobs {
            assert_eq!(job.state, JobState::Queued);
            assert!(listed.insert(job.id), "job {} listed twice", job.id);
        }
        let Some(next) = page.next else { break };
        query = query.after(next);
    }
    assert_eq!(listed.len() as u64, queued);
    assert!(
        queued > 25,
        "the jobs there and those added meanwhile, less the dead one"
    );
}

async fn a_dead_job_retried_runs_again_and_can_succeed(store: &Store) {
    let id = store
        .enqueue(NewJob::new("charge", json!(1)).max_attempts(1))
        .await
        .unwrap();
    assert_eq!(
        store.retry(id).await.unwrap(),
        Some(Retried::Refused(JobState::Queued))
    );
    claim_one(store, "default").await.unwrap();
    store
        .finish(
            id,
            "w",
            Finish::Dead {
                error: "card declined".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(store.unfinished().await.unwrap(), 0);

    assert_eq!(store.retry(id).await.unwrap(), Some(Retried::Queued));
    let queued = store.get(id).await.unwrap().unwrap();
    assert_eq!((queued.state, queued.attempts), (JobState::Queued, 0));
    assert_eq!(queued.finished_at, None);
    assert_eq!(queued.error.as_deref(), Some("card declined"), "kept");
    assert_eq!(store.unfinished().await.unwrap(), 1);

    let again = store.claim("default", "w2", LEASE, 1).await.unwrap();
    assert_eq!((again[0].id, again[0].attempt), (id, 1));
    assert!(
        store
            .finish(id, "w2", Finish::Succeeded(Some(json!("paid"))))
            .await
            .unwrap()
    );
    let done = store.get(id).await.unwrap().unwrap();
    assert_eq!(
        (done.state, done.result),
        (JobState::Succeeded, Some(json!("paid")))
    );
    assert_eq!(
        store.retry(id).await.unwrap(),
        Some(Retried::Refused(JobState::Succeeded))
    );

    // A failed job waiting for its retry runs now, with its attempts left.
    let failed = store
        .enqueue(NewJob::new("charge", json!(2)).max_attempts(3))
        .await
        .unwrap();
    claim_one(store, "default").await.unwrap();
    store
        .finish(
            failed,
            "w",
            Finish::Retry {
                error: "timeout".into(),
                at: SystemTime::now() + Duration::from_secs(3600),
            },
        )
        .await
        .unwrap();
    assert_eq!(claim_one(store, "default").await, None);
    assert_eq!(store.retry(failed).await.unwrap(), Some(Retried::Queued));
    let claimed = store.claim("default", "w", LEASE, 1).await.unwrap();
    assert_eq!((claimed[0].id, claimed[0].attempt), (failed, 2));

    let unknown: JobId = "00000000-0000-4000-8000-000000000000".parse().unwrap();
    assert_eq!(store.retry(unknown).await.unwrap(), None);
}

async fn counts_by_state_and_deletes_only_ended_jobs(store: &Store) {
    for queue in ["mail", "mail", "mail", "reports"] {
        store
            .enqueue(NewJob::new("job", json!(null)).queue(queue).max_attempts(1))
            .await
            .unwrap();
    }
    let running = store.claim("mail", "w", LEASE, 2).await.unwrap();
    store
        .finish(running[0].id, "w", Finish::Dead { error: "no".into() })
        .await
        .unwrap();
    let counts = store.counts().await.unwrap();
    let shown: Vec<(&str, u64, u64, u64, u64)> = counts
        .iter()
        .map(|q| (q.queue.as_str(), q.queued, q.running, q.failed, q.dead))
        .collect();
    assert_eq!(shown, [("mail", 1, 1, 0, 1), ("reports", 1, 0, 0, 0)]);

    let (dead, still_running) = (running[0].id, running[1].id);
    assert_eq!(
        store.delete(still_running).await.unwrap(),
        Some(JobState::Running),
        "kept: it has not ended"
    );
    assert!(store.get(still_running).await.unwrap().is_some());
    assert_eq!(store.delete(dead).await.unwrap(), Some(JobState::Dead));
    assert!(store.get(dead).await.unwrap().is_none());
    assert_eq!(store.delete(dead).await.unwrap(), None);
    assert_eq!(store.counts().await.unwrap()[0].dead, 0);
}

/// The SQL stores write concurrent enqueues and finishes together, one
/// statement a batch; each caller must still get its own answer.
async fn concurrent_writes_each_get_their_own_answer(store: &Store) {
    let enqueues = (0..60).map(|n| {
        let job = NewJob::new("charge", json!(n));
        // Every third one repeats one key: one job, one id for all twenty.
        store.enqueue(if n % 3 == 0 {
            job.idempotency_key("order-7")
        } else {
            job
        })
    });
    let ids: Vec<_> = futures::future::try_join_all(enqueues).await.unwrap();
    let keyed: HashSet<_> = ids.iter().step_by(3).collect();
    assert_eq!(keyed.len(), 1, "one id for one idempotency key");
    let all: HashSet<_> = ids.iter().collect();
    assert_eq!(all.len(), 41, "forty plain jobs and the keyed one");
    assert_eq!(store.unfinished().await.unwrap(), 41);

    let claimed = store.claim("default", "w", LEASE, 100).await.unwrap();
    assert_eq!(claimed.len(), 41);
    // Every other finish comes from a worker that does not hold the job.
    let finishes = claimed.iter().enumerate().map(|(n, job)| {
        let worker = if n % 2 == 0 { "w" } else { "stranger" };
        store.finish(job.id, worker, Finish::Succeeded(Some(json!(n))))
    });
    let recorded = futures::future::try_join_all(finishes).await.unwrap();
    for (n, (job, recorded)) in claimed.iter().zip(recorded).enumerate() {
        assert_eq!(recorded, n % 2 == 0, "finish {n} answered for its own job");
        let status = store.get(job.id).await.unwrap().unwrap();
        if recorded {
            assert_eq!(
                (status.state, status.result),
                (JobState::Succeeded, Some(json!(n)))
            );
        } else {
            assert_eq!(status.state, JobState::Running);
        }
    }
}

async fn a_finish_claims_the_next_job_in_the_same_call(store: &Store) {
    let mut ids = Vec::new();
    for n in 0..3 {
        ids.push(store.enqueue(NewJob::new("mail", json!(n))).await.unwrap());
        // Due one after another, so that claims take them in order.
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let first = store.claim("default", "w1", LEASE, 1).await.unwrap();
    assert_eq!(first[0].id, ids[0]);

    let next = NextClaim::new("default", "w2", LEASE, 1);
    let (recorded, claimed) = store
        .finish_and_claim(ids[0], "w1", Finish::Succeeded(None), next)
        .await
        .unwrap();
    assert!(recorded);
    assert_eq!(claimed.len(), 1);
    assert_eq!((claimed[0].id, claimed[0].attempt), (ids[1], 1));
    assert_eq!(claimed[0].payload, json!(1));
    assert_eq!(
        store.get(ids[0]).await.unwrap().unwrap().state,
        JobState::Succeeded
    );
    // The claim's worker holds the job, not the finishing one.
    assert!(!store.progress(ids[1], "w1", 10, None).await.unwrap());
    assert!(store.progress(ids[1], "w2", 10, None).await.unwrap());

    // A finish refused (another worker holds the job) still claims.
    let next = NextClaim::new("default", "w3", LEASE, 5);
    let (recorded, claimed) = store
        .finish_and_claim(ids[1], "stranger", Finish::Succeeded(None), next)
        .await
        .unwrap();
    assert!(!recorded);
    assert_eq!(
        claimed.iter().map(|job| job.id).collect::<Vec<_>>(),
        [ids[2]]
    );
    assert_eq!(
        store.get(ids[1]).await.unwrap().unwrap().state,
        JobState::Running
    );

    // Nothing left: the finish is recorded, the claim takes none.
    let next = NextClaim::new("default", "w4", LEASE, 1);
    let (recorded, claimed) = store
        .finish_and_claim(ids[2], "w3", Finish::Succeeded(None), next)
        .await
        .unwrap();
    assert!(recorded && claimed.is_empty());
}

async fn finishes_made_at_once_claim_distinct_jobs(store: &Store) {
    for n in 0..12 {
        store.enqueue(NewJob::new("mail", json!(n))).await.unwrap();
    }
    let running = store.claim("default", "first", LEASE, 4).await.unwrap();
    assert_eq!(running.len(), 4);
    // Four slots free at once, each claiming two: the eight left, once each.
    let finishes = running.iter().enumerate().map(|(slot, job)| {
        let next = NextClaim::new("default", format!("slot-{slot}"), LEASE, 2);
        store.finish_and_claim(job.id, "first", Finish::Succeeded(None), next)
    });
    let answers = futures::future::try_join_all(finishes).await.unwrap();
    let mut claimed = HashSet::new();
    for (slot, (recorded, jobs)) in answers.into_iter().enumerate() {
        assert!(recorded, "slot {slot}'s finish");
        for job in jobs {
            assert!(claimed.insert(job.id), "{} claimed twice", job.id);
            let worker = format!("slot-{slot}");
            assert!(
                store.progress(job.id, &worker, 1, None).await.unwrap(),
                "held by {worker}"
            );
        }
    }
    assert_eq!(claimed.len(), 8);
    assert!(nothing_due(store, "default", "late").await);
}

async fn a_delayed_job_waits_its_time(store: &Store) {
    let id = store
        .enqueue(NewJob::new("reminder", json!(null)).run_after(Duration::from_millis(300)))
        .await
        .unwrap();
    assert!(nothing_due(store, "default", "w").await);
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        store.claim("default", "w", LEASE, 1).await.unwrap()[0].id,
        id
    );
}

async fn a_lost_lease_hands_the_job_to_another_worker(store: &Store) {
    let short = Duration::from_millis(100);
    let id = store
        .enqueue(NewJob::new("report", json!(null)).max_attempts(2))
        .await
        .unwrap();
    store.claim("default", "dies", short, 1).await.unwrap();
    assert!(nothing_due(store, "default", "other").await, "leased");

    tokio::time::sleep(Duration::from_millis(150)).await;
    let again = store.claim("default", "other", short, 1).await.unwrap();
    assert_eq!((again[0].id, again[0].attempt), (id, 2));
    assert_eq!(store.renew(id, "dies", LEASE).await.unwrap(), Lease::Lost);
    assert!(
        !store
            .finish(id, "dies", Finish::Succeeded(None))
            .await
            .unwrap(),
        "the old worker records nothing"
    );

    // Its last attempt's worker dies too: the job is dead, saying why.
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(nothing_due(store, "default", "third").await);
    let dead = store.get(id).await.unwrap().unwrap();
    assert_eq!(dead.state, JobState::Dead);
    assert_eq!(
        dead.error.as_deref(),
        Some(
            "the worker running this job stopped before it finished (its lease ran out), and no attempt is left"
        )
    );
}

async fn cancels_waiting_and_running_jobs(store: &Store) {
    let waiting = store
        .enqueue(NewJob::new("a", json!(null)).run_after(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(
        store.cancel(waiting).await.unwrap(),
        Some(JobState::Cancelled)
    );

    let running = store.enqueue(NewJob::new("b", json!(null))).await.unwrap();
    store.claim("default", "w", LEASE, 1).await.unwrap();
    assert_eq!(store.renew(running, "w", LEASE).await.unwrap(), Lease::Held);
    assert_eq!(
        store.cancel(running).await.unwrap(),
        Some(JobState::Running)
    );
    assert_eq!(
        store.renew(running, "w", LEASE).await.unwrap(),
        Lease::CancelRequested
    );
    store.finish(running, "w", Finish::Cancelled).await.unwrap();
    assert_eq!(
        store.get(running).await.unwrap().unwrap().state,
        JobState::Cancelled
    );

    let unknown = "00000000-0000-4000-8000-000000000000".parse().unwrap();
    assert_eq!(store.cancel(unknown).await.unwrap(), None);
    assert!(store.get(unknown).await.unwrap().is_none());
}

async fn an_enqueue_wakes_a_waiting_worker(store: &Store) {
    let mut wakeups = store.wakeups().await.unwrap();
    assert!(nothing_due(store, "default", "w").await);
    let producer = store.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        producer
            .enqueue(NewJob::new("ping", json!(null)))
            .await
            .unwrap();
    });
    let waited = Instant::now();
    wakeups.wait(Duration::from_secs(30)).await;
    assert!(
        waited.elapsed() < Duration::from_secs(10),
        "woken by the enqueue, not the 30 s limit"
    );
    assert_eq!(
        store.claim("default", "w", LEASE, 1).await.unwrap().len(),
        1
    );
}

async fn two_instances_never_claim_a_job_twice(one: &Store, two: &Store) {
    const JOBS: usize = 200;
    for n in 0..JOBS {
        one.enqueue(NewJob::new("share", json!(n))).await.unwrap();
    }
    let drain = |store: Store, worker: &'static str| {
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let claimed = store.claim("default", worker, LEASE, 7).await.unwrap();
                if claimed.is_empty() {
                    return mine;
                }
                for job in claimed {
                    store
                        .finish(job.id, worker, Finish::Succeeded(None))
                        .await
                        .unwrap();
                    mine.push(job.id);
                }
            }
        })
    };
    let (a, b) = (drain(one.clone(), "one"), drain(two.clone(), "two"));
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let all: HashSet<_> = a.iter().chain(&b).collect();
    assert_eq!(a.len() + b.len(), JOBS, "{} + {}", a.len(), b.len());
    assert_eq!(all.len(), JOBS, "a job was claimed twice");
}

// ------------------------------------------------------------ the workers

async fn square(context: JobContext, n: u64) -> Result<u64, String> {
    context.progress(50, "half way");
    Ok(n * n)
}

async fn workers_run_jobs_and_keep_results(store: &Store) {
    let workers = Workers::start(
        store.clone(),
        Registry::new().register("square", square),
        lanes_tests::fast_workers(),
    )
    .unwrap();
    let mut ids = Vec::new();
    for n in 0..20u64 {
        ids.push((
            n,
            store
                .enqueue(NewJob::new("square", json!(n)))
                .await
                .unwrap(),
        ));
    }
    for (n, id) in ids {
        let job = lanes_tests::ended(store, id).await;
        assert_eq!(job.state, JobState::Succeeded, "{job:?}");
        assert_eq!(job.result, Some(json!(n * n)));
        assert_eq!(
            (job.progress, job.message.as_deref(), job.attempts),
            (50, Some("half way"), 1)
        );
    }
    workers.shutdown(Duration::from_secs(5)).await;
}

/// A slot claims its next job with its finish, from its own queue, but not
/// while another queue waits for a slot.
async fn a_busy_queue_leaves_slots_to_another(store: &Store) {
    let order = Arc::new(Mutex::new(Vec::new()));
    let record = |order: Arc<Mutex<Vec<String>>>| {
        move |_: JobContext, name: String| {
            let order = order.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(5)).await;
                order.lock().unwrap().push(name);
                Ok::<_, String>(())
            }
        }
    };
    for n in 0..30 {
        let job = NewJob::new("busy", json!(format!("busy-{n}"))).queue("busy");
        store.enqueue(job).await.unwrap();
    }
    let last = NewJob::new("other", json!("other")).queue("other");
    let other = store.enqueue(last).await.unwrap();
    let registry = Registry::new()
        .register("busy", record(order.clone()))
        .register("other", record(order.clone()));
    let config = lanes_tests::fast_workers()
        .queues(["busy", "other"])
        .concurrency(1);
    let workers = Workers::start(store.clone(), registry, config).unwrap();
    assert_eq!(
        lanes_tests::ended(store, other).await.state,
        JobState::Succeeded
    );
    workers.shutdown(Duration::from_secs(5)).await;
    let order = order.lock().unwrap();
    let at = order.iter().position(|name| name == "other").unwrap();
    assert!(
        at <= 3,
        "the other queue's job ran after {at} busy ones: {order:?}"
    );
}

async fn workers_retry_with_backoff_then_the_job_dies(store: &Store) {
    let registry = Registry::new()
        .register("refused", |_: JobContext, (): ()| async {
            Err::<(), _>("the mail server said no")
        })
        .register(
            "second_time_lucky",
            |context: JobContext, (): ()| async move {
                if context.attempt() < 2 {
                    Err("busy")
                } else {
                    Ok("sent")
                }
            },
        );
    let workers = Workers::start(store.clone(), registry, lanes_tests::fast_workers()).unwrap();
    let refused = store
        .enqueue(NewJob::new("refused", json!(null)).max_attempts(3))
        .await
        .unwrap();
    let lucky = store
        .enqueue(NewJob::new("second_time_lucky", json!(null)))
        .await
        .unwrap();

    let dead = lanes_tests::ended(store, refused).await;
    assert_eq!((dead.state, dead.attempts), (JobState::Dead, 3));
    assert_eq!(dead.error.as_deref(), Some("the mail server said no"));
    let sent = lanes_tests::ended(store, lucky).await;
    assert_eq!(
        (sent.state, sent.attempts, sent.result),
        (JobState::Succeeded, 2, Some(json!("sent")))
    );
    workers.shutdown(Duration::from_secs(5)).await;
}

async fn workers_turn_timeouts_panics_and_bad_payloads_into_errors(store: &Store) {
    let registry = Registry::new()
        .register("square", square)
        .register("slow", |_: JobContext, (): ()| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            Ok::<_, String>(())
        })
        .register("panics", |_: JobContext, (): ()| async {
            if true {
                panic!("boom");
            }
            Ok::<_, String>(())
        });
    let workers = Workers::start(store.clone(), registry, lanes_tests::fast_workers()).unwrap();
    let once = |kind: &str, payload| NewJob::new(kind, payload).max_attempts(1);
    let slow = store
        .enqueue(once("slow", json!(null)).timeout(Duration::from_millis(100)))
        .await
        .unwrap();
    let panics = store.enqueue(once("panics", json!(null))).await.unwrap();
    let stale = store
        .enqueue(NewJob::new("square", json!({"n": "seven"})))
        .await
        .unwrap();
    let unknown = store
        .enqueue(once("resize_image", json!(null)))
        .await
        .unwrap();
    let fine = store
        .enqueue(NewJob::new("square", json!(7)))
        .await
        .unwrap();

    assert_eq!(
        lanes_tests::ended(store, slow).await.error.as_deref(),
        Some("timed out after 0.1 s")
    );
    assert_eq!(
        lanes_tests::ended(store, panics).await.error.as_deref(),
        Some("panicked: boom")
    );
    let stale = lanes_tests::ended(store, stale).await;
    assert_eq!(
        (stale.state, stale.attempts),
        (JobState::Dead, 1),
        "not retried"
    );
    assert_eq!(
        stale.error.as_deref(),
        Some(
            "the stored arguments of `square` no longer fit its parameters (did their type change?): invalid type: map, expected u64"
        )
    );
    assert_eq!(
        lanes_tests::ended(store, unknown).await.error.as_deref(),
        Some("no job kind `resize_image` is registered in this worker")
    );
    // The worker went on.
    assert_eq!(
        lanes_tests::ended(store, fine).await.result,
        Some(json!(49))
    );
    workers.shutdown(Duration::from_secs(5)).await;
}

/// With the default 30 s lease, whose renewal comes every 10 s: the cancel
/// must reach the attempt directly, an async body by being dropped and a
/// sync one through `is_cancelled`.
async fn workers_stop_a_cancelled_job_at_once(store: &Store) {
    let sync_body_returned = Arc::new(AtomicBool::new(false));
    let returned = sync_body_returned.clone();
    let registry = Registry::new()
        .register("export", |context: JobContext, (): ()| async move {
            context.progress(10, "started");
            std::future::pending::<()>().await;
            Ok::<_, String>(())
        })
        .register("sync_export", move |context: JobContext, (): ()| {
            let returned = returned.clone();
            lanes::run_blocking(move || {
                context.progress(10, "started");
                while !context.is_cancelled() {
                    std::thread::sleep(Duration::from_millis(5));
                }
                returned.store(true, Ordering::SeqCst);
                Err::<(), _>(Cancelled)
            })
        });
    let workers = Workers::start(store.clone(), registry, lanes_tests::fast_workers()).unwrap();
    for kind in ["export", "sync_export"] {
        let id = store.enqueue(NewJob::new(kind, json!(null))).await.unwrap();
        while store.get(id).await.unwrap().unwrap().progress < 10 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let asked = Instant::now();
        assert_eq!(store.cancel(id).await.unwrap(), Some(JobState::Running));
        let job = lanes_tests::ended(store, id).await;
        assert_eq!(job.state, JobState::Cancelled, "{kind}: {job:?}");
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "{kind}: the cancel waited for the lease renewal"
        );
    }
    assert!(sync_body_returned.load(Ordering::SeqCst));
    workers.shutdown(Duration::from_secs(5)).await;
}

/// A sync body cannot be stopped: past its timeout, the job keeps its
/// lease until the body returns, its retry starts only then, and what the
/// stale attempt reports afterwards is refused.
async fn a_timed_out_sync_attempt_never_overlaps_its_retry(store: &Store) {
    let runs: Arc<Mutex<Vec<(u32, Instant, Instant)>>> = Arc::default();
    let recorded = runs.clone();
    let registry = Registry::new().register("slow_export", move |context: JobContext, (): ()| {
        let runs = recorded.clone();
        lanes::run_blocking(move || {
            let started = Instant::now();
            // Far past the timeout, so that a late timer still sees it overrun.
            std::thread::sleep(Duration::from_millis(1_000));
            // Past the timeout: this attempt is stale.
            context.progress(99, "written");
            runs.lock()
                .unwrap()
                .push((context.attempt(), started, Instant::now()));
            Ok::<_, String>("written")
        })
    });
    let workers = Workers::start(store.clone(), registry, lanes_tests::fast_workers()).unwrap();
    let id = store
        .enqueue(
            NewJob::new("slow_export", json!(null))
                .timeout(Duration::from_millis(100))
                .max_attempts(2),
        )
        .await
        .unwrap();
    let job = lanes_tests::ended(store, id).await;
    workers.shutdown(Duration::from_secs(5)).await;

    assert_eq!((job.state, job.attempts), (JobState::Dead, 2), "{job:?}");
    let error = job.error.unwrap();
    assert!(
        error.starts_with("timed out after 0.1 s; the body ran ") && error.ends_with(" s longer"),
        "{error}"
    );
    assert_eq!(job.result, None, "a stale attempt's result was recorded");
    assert_ne!(job.progress, 99, "a stale attempt's progress was recorded");
    let runs = runs.lock().unwrap();
    assert_eq!(runs.len(), 2);
    let (first, second) = (runs[0], runs[1]);
    assert_eq!((first.0, second.0), (1, 2));
    assert!(
        first.2 <= second.1,
        "the retry started while the first attempt ran"
    );
}

async fn shutdown_lets_running_jobs_finish_and_leaves_the_rest_queued(store: &Store) {
    let registry = Registry::new().register("nap", |context: JobContext, (): ()| async move {
        context.progress(1, "napping");
        tokio::time::sleep(Duration::from_millis(300)).await;
        Ok::<_, String>("rested")
    });
    let workers = Workers::start(
        store.clone(),
        registry,
        lanes_tests::fast_workers().concurrency(1),
    )
    .unwrap();
    let first = store
        .enqueue(NewJob::new("nap", json!(null)))
        .await
        .unwrap();
    while store.get(first).await.unwrap().unwrap().progress < 1 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let rest = [
        store
            .enqueue(NewJob::new("nap", json!(null)))
            .await
            .unwrap(),
        store
            .enqueue(NewJob::new("nap", json!(null)))
            .await
            .unwrap(),
    ];
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        store.get(first).await.unwrap().unwrap().state,
        JobState::Succeeded
    );
    for id in rest {
        assert_eq!(
            store.get(id).await.unwrap().unwrap().state,
            JobState::Queued
        );
    }
}

/// Past the shutdown deadline, the running jobs go back to the queue at
/// once, their attempt not counted: the next instance takes them without
/// waiting for the 30 s lease.
async fn shutdown_releases_the_jobs_still_running_at_its_deadline(store: &Store, next: &Store) {
    let first_runs = Arc::new(AtomicUsize::new(0));
    let registry = |first_runs: Arc<AtomicUsize>| {
        let sync_runs = first_runs.clone();
        Registry::new()
            .register("long", move |context: JobContext, (): ()| {
                let first = first_runs.fetch_add(1, Ordering::SeqCst) < 2;
                async move {
                    context.progress(1, "started");
                    if first {
                        std::future::pending::<()>().await;
                    }
                    Ok::<_, String>("done")
                }
            })
            .register("sync_long", move |context: JobContext, (): ()| {
                let first = sync_runs.fetch_add(1, Ordering::SeqCst) < 2;
                lanes::run_blocking(move || {
                    context.progress(1, "started");
                    while first && !context.is_cancelled() {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Ok::<_, String>("done")
                })
            })
    };
    let workers = Workers::start(
        store.clone(),
        registry(first_runs.clone()),
        lanes_tests::fast_workers(),
    )
    .unwrap();
    let ids = [
        store
            .enqueue(NewJob::new("long", json!(null)))
            .await
            .unwrap(),
        store
            .enqueue(NewJob::new("sync_long", json!(null)))
            .await
            .unwrap(),
    ];
    for id in ids {
        while store.get(id).await.unwrap().unwrap().progress < 1 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    workers.shutdown(Duration::from_millis(100)).await;
    for id in ids {
        let job = store.get(id).await.unwrap().unwrap();
        assert_eq!((job.state, job.attempts), (JobState::Queued, 0), "{job:?}");
    }

    let resumed = Instant::now();
    let workers = Workers::start(
        next.clone(),
        registry(first_runs),
        lanes_tests::fast_workers(),
    )
    .unwrap();
    for id in ids {
        let job = lanes_tests::ended(next, id).await;
        assert_eq!(
            (job.state, job.attempts),
            (JobState::Succeeded, 1),
            "{job:?}"
        );
    }
    assert!(
        resumed.elapsed() < Duration::from_secs(5),
        "the released jobs waited for their lease"
    );
    workers.shutdown(Duration::from_secs(5)).await;
}
