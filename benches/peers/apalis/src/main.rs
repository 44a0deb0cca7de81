//! The apalis side of the `side-by-side` bench scenario (benches/peers.rs):
//! the workload of lanes' `jobs` scenario on apalis' SQLite or PostgreSQL
//! storage.
//!
//! ```text
//! apalis-bench <sqlite:PATH|postgres:URL> <concurrency> <jobs> <producers> [power-loss|process-crash]
//! ```
//!
//! `producers` tokio tasks push `jobs` trivial jobs while one worker runs
//! them, `concurrency` at once; prints `jobs_per_second <f64>`, the job
//! count over the time from the first push to the last completion recorded
//! in the database. The durability (default `power-loss`) sets SQLite's
//! `synchronous` (FULL, or NORMAL) or PostgreSQL's `synchronous_commit`
//! (on, or off) on every connection. A SQLite file is created if missing;
//! in a PostgreSQL database, apalis' tables are created if missing and
//! emptied before the run.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use futures::StreamExt;
use futures::channel::mpsc;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqliteOperation, SqlitePoolOptions, SqliteSynchronous,
};

/// Jobs run so far, counted in the job itself: polling the database for
/// the count would load the very database being measured.
static RAN: AtomicU64 = AtomicU64::new(0);

/// How soon an idle worker looks for jobs when nothing woke it. The SQLite
/// update hook or PostgreSQL's NOTIFY wake it at once, but a wakeup can
/// come too early: SQLite's hook fires before the insert commits.
const FALLBACK_POLL: Duration = Duration::from_millis(100);

/// A run that takes longer than this is reported as failed.
const RUN_LIMIT: Duration = Duration::from_secs(110);

/// Job states that are not finished yet, in both of apalis' schemas.
const UNFINISHED: &str = "status IN ('Pending', 'Queued', 'Running')";

async fn trivial(_: ()) -> Result<(), BoxDynError> {
    RAN.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

enum Store {
    Sqlite(String),
    Postgres(String),
}

#[derive(Clone, Copy, PartialEq)]
enum Durability {
    PowerLoss,
    ProcessCrash,
}

struct Run {
    store: Store,
    concurrency: usize,
    jobs: usize,
    producers: usize,
    durability: Durability,
}

const USAGE: &str = "usage: apalis-bench <sqlite:PATH|postgres:URL> <concurrency> <jobs> \
                     <producers> [power-loss|process-crash]";

fn parse_run() -> Result<Run, String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !(4..=5).contains(&args.len()) {
        return Err("expected 4 or 5 arguments".to_owned());
    }
    let store = if let Some(path) = args[0].strip_prefix("sqlite:") {
        Store::Sqlite(path.to_owned())
    } else if let Some(url) = args[0].strip_prefix("postgres:") {
        Store::Postgres(url.to_owned())
    } else {
        return Err(format!("unknown store {:?}", args[0]));
    };
    let count = |i: usize| match args[i].parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("not a positive count: {:?}", args[i])),
    };
    let durability = match args.get(4).map(String::as_str) {
        None | Some("power-loss") => Durability::PowerLoss,
        Some("process-crash") => Durability::ProcessCrash,
        Some(other) => return Err(format!("unknown durability {other:?}")),
    };
    Ok(Run {
        store,
        concurrency: count(1)?,
        jobs: count(2)?,
        producers: count(3)?,
        durability,
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let run = parse_run().unwrap_or_else(|error| {
        eprintln!("apalis-bench: {error}\n{USAGE}");
        std::process::exit(2);
    });
    let measured = match &run.store {
        Store::Sqlite(path) => tokio::time::timeout(RUN_LIMIT, sqlite(path, &run)).await,
        Store::Postgres(url) => tokio::time::timeout(RUN_LIMIT, postgres(url, &run)).await,
    };
    match measured {
        Ok(Ok(rate)) => println!("jobs_per_second {rate}"),
        Ok(Err(error)) => {
            eprintln!("apalis-bench: {error}");
            std::process::exit(1);
        }
        Err(_) => {
            eprintln!(
                "apalis-bench: gave up after {} s: {} of {} jobs ran",
                RUN_LIMIT.as_secs(),
                RAN.load(Ordering::Relaxed),
                run.jobs
            );
            std::process::exit(1);
        }
    }
}

async fn sqlite(path: &str, run: &Run) -> Result<f64, BoxDynError> {
    let synchronous = match run.durability {
        Durability::PowerLoss => SqliteSynchronous::Full,
        Durability::ProcessCrash => SqliteSynchronous::Normal,
    };
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(synchronous);
    // apalis' setup also sets `synchronous = OFF` on whichever connection
    // runs it: it gets a pool of its own, closed after, so that every
    // connection measured has the same setting.
    let setup = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options.clone())
        .await?;
    SqliteStorage::setup(&setup).await?;
    setup.close().await;

    // The event-driven ("hooked") storage of apalis' docs, on our connect
    // options: each connection's update hook wakes the worker at an insert
    // into apalis' jobs table.
    let (inserted, inserts) = mpsc::unbounded::<()>();
    let pool = SqlitePoolOptions::new()
        // One connection, one writer at a time: with sqlx's default pool of
        // 10, the 16 producers and the worker contend for SQLite's write
        // lock, and pushes fail with "database is locked" once they have
        // waited out the 5 s busy timeout.
        .max_connections(1)
        .after_connect(move |connection, _| {
            let inserted = inserted.clone();
            Box::pin(async move {
                connection
                    .lock_handle()
                    .await?
                    .set_update_hook(move |change| {
                        if change.operation == SqliteOperation::Insert && change.table == "Jobs" {
                            let _ = inserted.unbounded_send(());
                        }
                    });
                Ok(())
            })
        })
        .connect_with(options)
        .await?;
    let storage = SqliteStorage::<()>::new(&pool);
    // Wakeups coalesced into one poll per batch, as apalis' docs do.
    let batch_size = apalis_sqlite::Config::default().batch_size;
    let backend = storage.clone().poll_with_strategy(
        Strategy::new()
            .stream(inserts.ready_chunks(batch_size))
            .interval(FALLBACK_POLL),
    );
    let worker = WorkerBuilder::new("apalis-bench")
        .backend(backend)
        .concurrency(run.concurrency)
        .build(trivial);
    tokio::spawn(worker.run());

    let start = Instant::now();
    produce(storage, run).await?;
    let unfinished = format!("SELECT COUNT(*) FROM Jobs WHERE {UNFINISHED}");
    wait_for_completions(run, async || {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(unfinished.as_str()))
            .fetch_one(&pool)
            .await
    })
    .await?;
    let elapsed = start.elapsed();
    let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM Jobs WHERE status = 'Done'")
        .fetch_one(&pool)
        .await?;
    rate(run, done, elapsed)
}

async fn postgres(url: &str, run: &Run) -> Result<f64, BoxDynError> {
    let mut options = PgConnectOptions::from_str(url)?;
    if run.durability == Durability::ProcessCrash {
        options = options.options([("synchronous_commit", "off")]);
    }
    let pool = PgPoolOptions::new().connect_with(options).await?;
    PostgresStorage::setup(&pool).await?;
    sqlx::query("TRUNCATE apalis.jobs, apalis.workers CASCADE")
        .execute(&pool)
        .await?;

    // The NOTIFY-driven storage of apalis' docs.
    let storage = PostgresStorage::<()>::new(&pool);
    let backend = storage
        .clone()
        .with_pubsub()
        .poll_with_strategy(Strategy::new().interval(FALLBACK_POLL));
    let worker = WorkerBuilder::new("apalis-bench")
        .backend(backend)
        .concurrency(run.concurrency)
        .build(trivial);
    tokio::spawn(worker.run());

    let start = Instant::now();
    produce(storage, run).await?;
    let unfinished = format!("SELECT COUNT(*) FROM apalis.jobs WHERE {UNFINISHED}");
    wait_for_completions(run, async || {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(unfinished.as_str()))
            .fetch_one(&pool)
            .await
    })
    .await?;
    let elapsed = start.elapsed();
    let done: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM apalis.jobs WHERE status = 'Done'")
        .fetch_one(&pool)
        .await?;
    rate(run, done, elapsed)
}

/// Pushes `run.jobs` jobs from `run.producers` tasks, each on a clone of
/// `storage`, as fast as it takes them.
async fn produce<S, Kind>(storage: S, run: &Run) -> Result<(), BoxDynError>
where
    S: TaskSink<(), Kind> + Clone + Send + 'static,
    S::Error: std::fmt::Debug,
{
    let (jobs, producers) = (run.jobs, run.producers);
    let pushers: Vec<_> = (0..producers)
        .map(|first| {
            let mut storage = storage.clone();
            tokio::spawn(async move {
                for _ in (first..jobs).step_by(producers) {
                    storage
                        .push(())
                        .await
                        .map_err(|error| format!("push: {error:?}"))?;
                }
                Ok::<_, String>(())
            })
        })
        .collect();
    for pusher in pushers {
        pusher.await??;
    }
    Ok(())
}

/// Waits until every job has run, and then until the database has recorded
/// every completion (apalis acknowledges them in batches).
async fn wait_for_completions(
    run: &Run,
    unfinished: impl AsyncFn() -> Result<i64, sqlx::Error>,
) -> Result<(), BoxDynError> {
    while RAN.load(Ordering::Relaxed) < run.jobs as u64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    while unfinished().await? > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

fn rate(run: &Run, done: i64, elapsed: Duration) -> Result<f64, BoxDynError> {
    if done != run.jobs as i64 {
        return Err(format!("{done} of {} jobs are done", run.jobs).into());
    }
    Ok(run.jobs as f64 / elapsed.as_secs_f64())
}
