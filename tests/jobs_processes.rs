//! Durability across processes, with real processes (`tests/bin/jobs_child.rs`):
//! a process killed with SIGKILL while its 1,000 jobs run loses none of
//! them, and one killed while it enqueues loses no enqueue it answered, on
//! SQLite and on PostgreSQL; two worker processes share one
//! PostgreSQL queue without running a job twice; and a cancel made by one
//! process reaches the job another runs at once, through `NOTIFY`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lanes::jobs::{NewJob, Store};

const CHILD: &str = env!("CARGO_BIN_EXE_jobs_child");
const JOBS: u64 = 1_000;
/// The child's concurrency: at most this many jobs run at the kill.
const CONCURRENCY: usize = 8;

/// Each `<pid> start|done <n>` line of the children's log.
struct Log {
    lines: Vec<(u32, bool, u64)>,
}

impl Log {
    fn read(path: &Path) -> Log {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines = text
            .lines()
            .map(|line| {
                let mut fields = line.split(' ');
                let pid = fields.next().unwrap().parse().unwrap();
                let done = fields.next().unwrap() == "done";
                (pid, done, fields.next().unwrap().parse().unwrap())
            })
            .collect();
        Log { lines }
    }

    fn count(&self, pid: Option<u32>, done: bool) -> usize {
        self.lines
            .iter()
            .filter(|(p, d, _)| *d == done && pid.is_none_or(|pid| pid == *p))
            .count()
    }

    /// How many times each job started.
    fn starts(&self) -> HashMap<u64, usize> {
        let mut starts = HashMap::new();
        for (_, done, n) in &self.lines {
            if !done {
                *starts.entry(*n).or_default() += 1;
            }
        }
        starts
    }
}

fn spawn(store: &str, log: &Path, enqueue: u64) -> Child {
    Command::new(CHILD)
        .args([store, log.to_str().unwrap(), &enqueue.to_string()])
        .stdout(Stdio::null())
        .spawn()
        .expect("the child starts")
}

/// Waits for `child` to exit successfully, for at most two minutes.
fn finishes(mut child: Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "the worker process failed: {status}");
            return;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the worker process did not finish within two minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn temp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("lanes_{name}_{}", std::process::id()))
}

/// Kills the process that enqueued and is running the jobs, starts another
/// on the same store, and checks that every job ran to its end.
async fn survives_sigkill(store: &str, reopen: impl AsyncFnOnce() -> Store) {
    let log = temp(&format!("crash_{}.log", store.replace([':', '/'], "_")));
    let _ = std::fs::remove_file(&log);
    let mut first = spawn(store, &log, JOBS);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Log::read(&log).count(None, true) < 200 {
        assert!(
            Instant::now() < deadline,
            "the first worker did not get going"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let killed = first.id();
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let at_kill = Log::read(&log);
    let done_before = at_kill.count(Some(killed), true);
    assert!(
        done_before < JOBS as usize,
        "the kill came while jobs were left"
    );

    finishes(spawn(store, &log, 0));

    let log_after = Log::read(&log);
    let starts = log_after.starts();
    let done: HashSet<u64> = log_after
        .lines
        .iter()
        .filter(|l| l.1)
        .map(|l| l.2)
        .collect();
    assert_eq!(done.len(), JOBS as usize, "every job ran to its end");
    // Run twice: only jobs the killed process had started, at most as many
    // as ran at once.
    let killed_started: HashSet<u64> = at_kill
        .lines
        .iter()
        .filter(|l| l.0 == killed && !l.1)
        .map(|l| l.2)
        .collect();
    let twice: Vec<u64> = starts
        .iter()
        .filter(|(_, s)| **s > 1)
        .map(|(n, _)| *n)
        .collect();
    assert!(
        twice.len() <= CONCURRENCY,
        "{} jobs ran twice: {twice:?}",
        twice.len()
    );
    assert!(
        twice.iter().all(|n| killed_started.contains(n)),
        "{twice:?}"
    );
    assert_eq!(reopen().await.unfinished().await.unwrap(), 0);
    let _ = std::fs::remove_file(&log);
}

/// Kills a process while 16 of its tasks enqueue at once, so that the kill
/// falls in the middle of a batch, and checks that every enqueue it had
/// answered is in the store.
async fn answered_enqueues_survive_a_sigkill(store: &str, reopen: impl AsyncFnOnce() -> Store) {
    let log = temp(&format!("flood_{}.log", store.replace([':', '/'], "_")));
    let _ = std::fs::remove_file(&log);
    let mut child = Command::new(CHILD)
        .args([store, log.to_str().unwrap(), "flood"])
        .stdout(Stdio::null())
        .spawn()
        .expect("the child starts");
    let answered = || std::fs::read_to_string(&log).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    while answered().lines().count() < 2_000 {
        assert!(Instant::now() < deadline, "the child did not get going");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL, mid-batch
    child.wait().unwrap();
    let ids: Vec<lanes::jobs::JobId> = answered()
        .lines()
        // A line cut by the kill was never answered whole.
        .filter_map(|line| line.parse().ok())
        .collect();
    let store = reopen().await;
    let mut lost = Vec::new();
    for id in &ids {
        if store.get(*id).await.unwrap().is_none() {
            lost.push(*id);
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} answered enqueues lost: {lost:?}",
        lost.len(),
        ids.len()
    );
    assert!(store.unfinished().await.unwrap() >= ids.len() as u64);
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_answered_enqueues_survive_a_sigkill_mid_batch() {
    let db = temp("flood.db");
    let store = format!("sqlite:{}", db.display());
    answered_enqueues_survive_a_sigkill(&store, async || Store::sqlite(&db).await.unwrap()).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_jobs_survive_a_sigkill() {
    let db = temp("crash.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
    let store = format!("sqlite:{}", db.display());
    survives_sigkill(&store, async || Store::sqlite(&db).await.unwrap()).await;
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_jobs_survive_a_sigkill_two_processes_share_a_queue_and_hear_cancels() {
    let Some(url) = lanes_tests::database_url("the PostgreSQL process tests") else {
        return;
    };
    // One test for all: its last step drops every schema the process made.
    let schema = lanes_tests::test_schema();
    answered_enqueues_survive_a_sigkill(&format!("postgres:{schema}"), async || {
        Store::postgres(&url, &schema).await.unwrap()
    })
    .await;

    let schema = lanes_tests::test_schema();
    survives_sigkill(&format!("postgres:{schema}"), async || {
        Store::postgres(&url, &schema).await.unwrap()
    })
    .await;

    // Two worker processes on one queue, nobody killed: each job runs once.
    let schema = lanes_tests::test_schema();
    let store = Store::postgres(&url, &schema).await.unwrap();
    for n in 0..JOBS {
        store
            // As `record(n)` stores its argument.
            .enqueue(NewJob::new("record", serde_json::json!({ "n": n })))
            .await
            .unwrap();
    }
    let log = temp("shared.log");
    let _ = std::fs::remove_file(&log);
    let (one, two) = (
        spawn(&format!("postgres:{schema}"), &log, 0),
        spawn(&format!("postgres:{schema}"), &log, 0),
    );
    let pids = [one.id(), two.id()];
    finishes(one);
    finishes(two);
    let log_after = Log::read(&log);
    let starts = log_after.starts();
    assert_eq!(starts.len(), JOBS as usize, "every job ran");
    assert!(starts.values().all(|s| *s == 1), "a job ran twice");
    for pid in pids {
        let share = log_after.count(Some(pid), true);
        assert!(share > 0, "process {pid} ran none of the jobs");
    }
    assert_eq!(store.unfinished().await.unwrap(), 0);
    let _ = std::fs::remove_file(&log);

    a_cancel_reaches_a_job_running_in_another_instance(&url).await;
    lanes_tests::drop_test_schemas(&url).await;
}

/// The worker's lease is the default 30 s, renewed every 10 s: only the
/// `NOTIFY` can tell it of the cancel sooner.
async fn a_cancel_reaches_a_job_running_in_another_instance(url: &str) {
    let schema = lanes_tests::test_schema();
    let store = Store::postgres(url, &schema).await.unwrap();
    let id = store
        .enqueue(NewJob::new("until_cancelled", serde_json::json!({})))
        .await
        .unwrap();
    let log = temp("cancel.log");
    let _ = std::fs::remove_file(&log);
    let worker = Command::new(CHILD)
        .args([&format!("postgres:{schema}"), log.to_str().unwrap(), "0"])
        .env("JOBS_CHILD_LEASE_MS", "30000")
        .stdout(Stdio::null())
        .spawn()
        .expect("the child starts");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Log::read(&log).count(None, false) == 0 {
        assert!(Instant::now() < deadline, "the job did not start");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let asked = Instant::now();
    assert_eq!(
        store.cancel(id).await.unwrap(),
        Some(lanes::jobs::JobState::Running)
    );
    let job = lanes_tests::ended(&store, id).await;
    assert_eq!(job.state, lanes::jobs::JobState::Cancelled, "{job:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "the cancel waited for the lease renewal"
    );
    finishes(worker);
    let _ = std::fs::remove_file(&log);
}
