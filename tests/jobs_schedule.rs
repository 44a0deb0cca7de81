//! Scheduled kinds: the workers enqueue one job per slot, and instances
//! sharing a store run each slot once, on memory, on SQLite, and on
//! PostgreSQL when `DATABASE_URL` is set (CI sets it, and there a missing
//! database fails instead of skipping).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use lanes::jobs::{JobContext, NewJob, Registry, Store, WorkerConfig, Workers};
use lanes_tests::stores::{Backend, Memory, Postgres, Sqlite};

/// The slots the jobs of `every_second` ran for, as each job saw its own.
#[derive(Clone, Debug, Default)]
struct Runs(Arc<Mutex<Vec<SystemTime>>>);

impl Runs {
    /// The slots run, in Unix milliseconds, in order.
    fn slots(&self) -> Vec<u128> {
        let mut slots: Vec<u128> = self
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|slot| slot.duration_since(UNIX_EPOCH).unwrap().as_millis())
            .collect();
        slots.sort_unstable();
        slots
    }
}

#[lanes::background(every = "1s", kind = "every_second")]
async fn every_second(job: JobContext, State(runs): State<Runs>) {
    let slot = job.slot().expect("a scheduled job knows its slot");
    runs.0.lock().unwrap().push(slot);
}

/// On a queue the tests' workers do not take: listed, never enqueued.
#[lanes::background(cron = "0 3 * * *", queue = "nightly")]
async fn nightly_report() {}

fn workers(runs: &Runs) -> WorkerConfig {
    lanes_tests::fast_workers()
        .queues(["default"])
        .state(runs.clone())
}

#[tokio::test]
async fn two_memory_instances_run_each_slot_once() {
    let backend = Memory::default();
    two_instances_run_each_slot_once(backend.fresh().await, backend.reopen().await).await;
}

#[tokio::test]
async fn two_sqlite_instances_run_each_slot_once() {
    let backend = Sqlite::default();
    two_instances_run_each_slot_once(backend.fresh().await, backend.reopen().await).await;
}

#[tokio::test]
async fn two_postgres_instances_run_each_slot_once() {
    let Some(url) = lanes_tests::database_url("the PostgreSQL schedule test") else {
        return;
    };
    let backend = Postgres::new(&url);
    two_instances_run_each_slot_once(backend.fresh().await, backend.reopen().await).await;
    lanes_tests::drop_test_schemas(&url).await;
}

/// Two instances, each with its own store handle and workers, run the
/// 1-second schedule for about 5 s: every slot between the first and the
/// last run ran once, and the kind of a queue they do not take was never
/// enqueued.
async fn two_instances_run_each_slot_once(one: Store, two: Store) {
    let runs = Runs::default();
    let first = Workers::start(one.clone(), Registry::registered(), workers(&runs)).unwrap();
    let second = Workers::start(two, Registry::registered(), workers(&runs)).unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    tokio::join!(
        first.shutdown(Duration::from_secs(5)),
        second.shutdown(Duration::from_secs(5)),
    );
    let slots = runs.slots();
    assert!(slots.len() >= 3, "too few slots ran: {slots:?}");
    for slot in &slots {
        assert_eq!(slot % 1000, 0, "a slot off the whole second: {slots:?}");
    }
    for pair in slots.windows(2) {
        // 0: a slot ran twice; 2000 or more: a slot in the middle did not run.
        assert_eq!(pair[1] - pair[0], 1000, "slots run: {slots:?}");
    }
    assert_eq!(one.waiting("nightly").await.unwrap(), 0);
}

/// A schedule whose store is full logs, keeps its workers running, and
/// enqueues its latest slot once the store has room.
#[tokio::test]
async fn a_schedule_enqueues_again_once_its_full_store_has_room() {
    let store = Store::memory(1);
    let parked = store
        .enqueue(NewJob::new("parked", serde_json::Value::Null).queue("parked"))
        .await
        .unwrap();
    let runs = Runs::default();
    let workers = Workers::start(store.clone(), Registry::registered(), workers(&runs)).unwrap();
    // Past a slot: its enqueue was refused.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(runs.slots(), Vec::<u128>::new());
    store.cancel(parked).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while runs.slots().is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    workers.shutdown(Duration::from_secs(5)).await;
    assert!(
        !runs.slots().is_empty(),
        "no scheduled job ran once the store had room"
    );
}

/// The registry lists its scheduled kinds, by name, with their queue, the
/// schedule as written and the next slot: cron slots in UTC, periods from
/// the Unix epoch.
#[test]
fn the_registry_lists_its_schedules() {
    let before = SystemTime::now();
    let schedules = Registry::registered().schedules();
    let kinds: Vec<&str> = schedules.iter().map(|scheduled| scheduled.kind).collect();
    assert_eq!(kinds, ["every_second", "jobs_schedule::nightly_report"]);

    let every_second = &schedules[0];
    assert_eq!(every_second.queue, "default");
    assert_eq!(every_second.schedule, "every 1s");
    let next = every_second
        .next_slot
        .expect("a period always has a next slot");
    assert!(next > before, "{next:?} is not after {before:?}");
    assert_eq!(
        next.duration_since(UNIX_EPOCH).unwrap().as_millis() % 1000,
        0
    );

    let nightly = &schedules[1];
    assert_eq!(nightly.queue, "nightly");
    assert_eq!(nightly.schedule, "cron 0 3 * * *");
    let next = nightly.next_slot.expect("03:00 comes every day");
    assert!(next > before, "{next:?} is not after {before:?}");
    assert!(next <= before + Duration::from_secs(24 * 3600));
    let seconds = next.duration_since(UNIX_EPOCH).unwrap().as_secs();
    assert_eq!(seconds % (24 * 3600), 3 * 3600, "not 03:00 UTC: {next:?}");
}

/// A job enqueued by a call, not by a schedule, has no slot.
#[tokio::test]
async fn a_job_enqueued_otherwise_has_no_slot() {
    let store = Store::memory(10);
    let registry = Registry::new().register("plain", |job: JobContext, (): ()| async move {
        Ok::<_, String>(job.slot().map(|slot| format!("{slot:?}")))
    });
    let workers = Workers::start(store.clone(), registry, lanes_tests::fast_workers()).unwrap();
    let id = store
        .enqueue(NewJob::new("plain", serde_json::Value::Null))
        .await
        .unwrap();
    let job = lanes_tests::ended(&store, id).await;
    workers.shutdown(Duration::from_secs(5)).await;
    assert_eq!(job.state, lanes::jobs::JobState::Succeeded, "{job:?}");
    assert_eq!(job.result, None, "the job saw a slot: {job:?}");
}
