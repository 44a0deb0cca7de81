//! Job operations a deploy depends on: how fast a cancel reaches a running
//! job (in one process, and from another PostgreSQL instance), and how soon
//! a new instance resumes the jobs the last one released at SIGTERM.
//!
//! The other instance is this bench binary again, started with
//! [`JOBS_CHILD`] naming its store: it runs `until_cancelled` and `long`
//! jobs with the default worker settings (30 s lease), prints
//! `started <id>` as each begins and `stopped <id> <unix ns>` when an
//! `until_cancelled` one is dropped, and shuts down at SIGTERM.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lanes::jobs::{JobContext, JobId, NewJob, Registry, Store, WorkerConfig, Workers};

use crate::{JobStoreKind, client_runtime, load, ms, targets};

/// Set in the child: `sqlite:<path>` or `postgres:<url>|<schema>`.
pub(crate) const JOBS_CHILD: &str = "LANES_BENCH_JOBS_CHILD";

const CANCELS: usize = 100;
const RELEASED_JOBS: usize = 8;
/// The released instance's shutdown deadline: short, since its jobs would
/// run for a minute.
const DEADLINE: Duration = Duration::from_millis(200);

fn unix_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos()
}

/// Says on stdout when an `until_cancelled` job's future is dropped.
struct StampOnDrop(JobId);

impl Drop for StampOnDrop {
    fn drop(&mut self) {
        println!("stopped {} {}", self.0, unix_nanos());
    }
}

fn registry() -> Registry {
    Registry::new()
        .register("until_cancelled", |job: JobContext, (): ()| async move {
            let _stamp = StampOnDrop(job.id());
            println!("started {}", job.id());
            std::future::pending::<()>().await;
            Ok::<_, String>(())
        })
        .register("long", |job: JobContext, (): ()| async move {
            println!("started {}", job.id());
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, String>(())
        })
}

async fn open(spec: &str) -> Store {
    if let Some(path) = spec.strip_prefix("sqlite:") {
        return Store::sqlite(path).await.expect("the SQLite store");
    }
    let (url, schema) = spec
        .strip_prefix("postgres:")
        .and_then(|rest| rest.rsplit_once('|'))
        .expect("sqlite:<path> or postgres:<url>|<schema>");
    Store::postgres(url, schema)
        .await
        .expect("the PostgreSQL store")
}

/// The other instance: works the store until SIGTERM.
pub(crate) fn child(spec: &str) {
    let runtime = client_runtime(2);
    runtime.block_on(async {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("a SIGTERM handler");
        let store = open(spec).await;
        let workers =
            Workers::start(store, registry(), WorkerConfig::default()).expect("the workers start");
        println!("ready");
        terminate.recv().await;
        workers.shutdown(DEADLINE).await;
    });
}

fn spawn_child(spec: &str) -> (Child, std::io::Lines<BufReader<ChildStdout>>) {
    let mut child = Command::new(std::env::current_exe().expect("the bench binary"))
        .env(JOBS_CHILD, spec)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the child instance starts");
    let lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    (child, lines)
}

/// The next line of the child's that starts with `word`, split.
fn next_line(lines: &mut std::io::Lines<BufReader<ChildStdout>>, word: &str) -> Vec<String> {
    for line in lines.by_ref() {
        let line = line.expect("the child's stdout");
        if line.split(' ').next() == Some(word) {
            return line.split(' ').map(str::to_owned).collect();
        }
    }
    panic!("the child ended before printing `{word}`");
}

fn terminate(child: &Child) {
    // SAFETY: a plain syscall on a child process this bench started.
    let sent = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(sent, 0, "SIGTERM was sent");
}

/// A cancel's latency in one process: from the `cancel` call to the drop
/// of the job's future.
async fn cancels_in_process(store: &Store) -> Vec<Duration> {
    let (stopped, mut stops) = tokio::sync::mpsc::unbounded_channel();
    let (started, mut starts) = tokio::sync::mpsc::unbounded_channel();
    struct Stop(tokio::sync::mpsc::UnboundedSender<Instant>);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.send(Instant::now());
        }
    }
    let registry = Registry::new().register("until_cancelled", move |_: JobContext, (): ()| {
        let (stopped, started) = (stopped.clone(), started.clone());
        async move {
            let _stop = Stop(stopped);
            let _ = started.send(());
            std::future::pending::<()>().await;
            Ok::<_, String>(())
        }
    });
    let workers = Workers::start(store.clone(), registry, WorkerConfig::default())
        .expect("the workers start");
    let mut latencies = Vec::with_capacity(CANCELS);
    for _ in 0..CANCELS {
        let id = store
            .enqueue(NewJob::new("until_cancelled", serde_json::Value::Null))
            .await
            .expect("enqueued");
        starts.recv().await.expect("the job starts");
        let asked = Instant::now();
        store.cancel(id).await.expect("cancelled");
        let stopped = stops.recv().await.expect("the job stops");
        latencies.push(stopped.duration_since(asked));
    }
    workers.shutdown(Duration::from_secs(5)).await;
    latencies
}

/// A cancel's latency across instances: from just before the `cancel` call
/// here to the drop of the job's future in the child, by the wall clock
/// both share.
fn cancels_across(spec: &str, store: &Store, runtime: &tokio::runtime::Runtime) -> Vec<Duration> {
    let (mut child, mut lines) = spawn_child(spec);
    next_line(&mut lines, "ready");
    let mut latencies = Vec::with_capacity(CANCELS);
    for _ in 0..CANCELS {
        let id = runtime
            .block_on(store.enqueue(NewJob::new("until_cancelled", serde_json::Value::Null)));
        let id = id.expect("enqueued").to_string();
        assert_eq!(next_line(&mut lines, "started")[1], id);
        let asked = unix_nanos();
        runtime
            .block_on(store.cancel(id.parse().expect("an id")))
            .expect("cancelled");
        let stopped = next_line(&mut lines, "stopped");
        assert_eq!(stopped[1], id);
        let at: u128 = stopped[2].parse().expect("a time");
        latencies.push(Duration::from_nanos(
            u64::try_from(at.saturating_sub(asked)).unwrap_or(u64::MAX),
        ));
    }
    terminate(&child);
    child.wait().expect("the child exits");
    latencies
}

/// From the start of a new instance to every job the last one released at
/// SIGTERM running again.
fn resume_after_sigterm(spec: &str, store: &Store, runtime: &tokio::runtime::Runtime) -> Duration {
    let (mut first, mut lines) = spawn_child(spec);
    next_line(&mut lines, "ready");
    for _ in 0..RELEASED_JOBS {
        runtime
            .block_on(store.enqueue(NewJob::new("long", serde_json::Value::Null)))
            .expect("enqueued");
    }
    for _ in 0..RELEASED_JOBS {
        next_line(&mut lines, "started");
    }
    terminate(&first);
    assert!(first.wait().expect("it exits").success());
    let started = Instant::now();
    let (mut second, mut lines) = spawn_child(spec);
    for _ in 0..RELEASED_JOBS {
        next_line(&mut lines, "started");
    }
    let resumed = started.elapsed();
    terminate(&second);
    second.wait().expect("the second instance exits");
    resumed
}

pub(crate) fn operations(report: &mut String) {
    let runtime = client_runtime(2);
    let mut stores = vec![JobStoreKind::Memory, JobStoreKind::Sqlite];
    let url = std::env::var("DATABASE_URL").ok();
    match &url {
        Some(url) => stores.push(JobStoreKind::Postgres(url.clone())),
        None => {
            eprintln!("operations: DATABASE_URL is not set; the PostgreSQL rows are left out");
        }
    }
    let mut cancel_rows = Vec::new();
    let mut resume_rows = Vec::new();
    for (round, kind) in stores.iter().enumerate() {
        let (store, made) = runtime.block_on(kind.open(1_000 + round));
        let mut latencies = runtime.block_on(cancels_in_process(&store));
        cancel_rows.push((
            format!("{}, one process", kind.name()),
            load::quantile(&mut latencies, 0.5),
            load::quantile(&mut latencies, 0.99),
        ));
        let spec = match (kind, &made) {
            (JobStoreKind::Sqlite, Some(path)) => Some(format!("sqlite:{path}")),
            (JobStoreKind::Postgres(url), Some(schema)) => Some(format!("postgres:{url}|{schema}")),
            _ => None,
        };
        if let Some(spec) = spec {
            if matches!(kind, JobStoreKind::Postgres(_)) {
                let mut latencies = cancels_across(&spec, &store, &runtime);
                cancel_rows.push((
                    "PostgreSQL, from another instance".to_owned(),
                    load::quantile(&mut latencies, 0.5),
                    load::quantile(&mut latencies, 0.99),
                ));
            }
            let mut resumes: Vec<Duration> = (0..3)
                .map(|_| resume_after_sigterm(&spec, &store, &runtime))
                .collect();
            resume_rows.push((kind.name(), load::quantile(&mut resumes, 0.5)));
        }
        runtime.block_on(kind.remove(made));
    }

    writeln!(
        report,
        "## Job operations: cancel latency and resume after SIGTERM\n"
    )
    .unwrap();
    writeln!(
        report,
        "Workers with the default settings (30 s lease, renewed every 10 s). Cancel: {CANCELS} \
         jobs, each cancelled once running; the time from the `cancel` call to the drop of the \
         job's future (across instances, by the wall clock both processes share). Resume: a \
         worker process running {RELEASED_JOBS} one-minute jobs gets SIGTERM, and releases them \
         at its {} ms shutdown deadline; then the time from starting a new process to all {RELEASED_JOBS} \
         running again, median of 3.\n",
        DEADLINE.as_millis()
    )
    .unwrap();
    writeln!(report, "| cancel | p50 | p99 |\n|---|---|---|").unwrap();
    for (name, p50, p99) in &cancel_rows {
        writeln!(report, "| {name} | {} | {} |", ms(*p50), ms(*p99)).unwrap();
    }
    writeln!(report, "\n| store | resume after SIGTERM |\n|---|---|").unwrap();
    for (name, resumed) in &resume_rows {
        writeln!(report, "| {name} | {} |", ms(*resumed)).unwrap();
    }
    let mut rows = Vec::new();
    let worst_local = cancel_rows
        .iter()
        .filter(|row| row.0.ends_with("one process"))
        .map(|row| row.2)
        .max()
        .unwrap_or_default();
    rows.push((
        "cancel p99 under 100 ms in one process".to_owned(),
        ms(worst_local),
        worst_local < Duration::from_millis(100),
    ));
    if let Some(across) = cancel_rows.iter().find(|row| row.0.contains("another")) {
        rows.push((
            "cancel p99 under 250 ms across PostgreSQL instances".to_owned(),
            ms(across.2),
            across.2 < Duration::from_millis(250),
        ));
    }
    let worst_resume = resume_rows
        .iter()
        .map(|row| row.1)
        .max()
        .unwrap_or_default();
    rows.push((
        "resume after SIGTERM under 1 s".to_owned(),
        ms(worst_resume),
        worst_resume < Duration::from_secs(1),
    ));
    let rows: Vec<(&str, String, bool)> = rows
        .iter()
        .map(|(target, measured, met)| (target.as_str(), measured.clone(), *met))
        .collect();
    targets(report, &rows);
}
