//! Durable jobs: the store the `#[background]` lane runs on.
//!
//! A [`Store`] keeps jobs and hands them to workers under a lease: a worker
//! claims jobs of a queue, renews its lease while it runs them, and records
//! how each ended. A job whose worker died (its lease ran out) is claimed
//! again, so delivery is at least once; one that keeps failing ends dead
//! with its last error.
//!
//! Three stores behave the same and pass the same test suite:
//! - [`Store::memory`], for tests and for jobs that may be lost;
//! - [`Store::sqlite`], the embedded durable default: a file next to the
//!   app (WAL), no server, survives `kill -9` and, by default, power loss;
//! - [`Store::postgres`], for several app instances sharing one queue:
//!   claims use `FOR UPDATE SKIP LOCKED`, and workers are woken by
//!   `LISTEN/NOTIFY`.
//!
//! Every store is bounded ([`StoreOptions`]): past its bound of unfinished
//! jobs, or a queue's, an enqueue fails with [`StoreError::Full`] (`503`
//! with `Retry-After` from a handler). An answered enqueue survives power
//! loss unless [`Durability::ProcessCrash`] relaxes it.
//!
//! ```
//! use std::time::Duration;
//! use lanes::jobs::{Finish, NewJob, Store};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), lanes::jobs::StoreError> {
//! let store = Store::memory(10_000);
//! let id = store.enqueue(NewJob::new("send_welcome", serde_json::json!({"to": "ada@example.com"}))).await?;
//!
//! let claimed = store.claim("default", "worker-1", Duration::from_secs(30), 8).await?;
//! assert_eq!(claimed[0].id, id);
//! store.finish(id, "worker-1", Finish::Succeeded(None)).await?;
//! assert_eq!(store.get(id).await?.unwrap().state, lanes::jobs::JobState::Succeeded);
//! # Ok(()) }
//! ```

#[cfg(feature = "postgres")]
mod batch;
mod cancels;
pub(crate) mod kind;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod query;
mod routes;
pub(crate) mod schedule;
#[cfg(feature = "sqlite")]
mod sqlite;
pub(crate) mod state;
mod worker;

pub use kind::Enqueue;
pub use query::{BadCursor, Cursor, JobPage, JobQuery, MOST_JOBS_LISTED, QueueCounts, Retried};
pub use routes::{Accepted, admin_router, router};
pub use schedule::ScheduledKind;
pub use state::{StartError, WorkerState};
pub use worker::{Cancelled, JobContext, Registry, WorkerConfig, Workers};

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The error of a job whose worker stopped (its lease ran out) during its
/// last attempt.
pub(crate) const LEASE_LOST: &str = "the worker running this job stopped before it finished (its lease ran out), and no attempt is left";

/// A job's id: random (a UUID v4, 122 random bits), so that ids cannot be
/// guessed from one another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(uuid::Uuid);

impl JobId {
    pub(crate) fn random() -> JobId {
        JobId(uuid::Uuid::new_v4())
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

impl FromStr for JobId {
    type Err = uuid::Error;

    fn from_str(text: &str) -> Result<JobId, uuid::Error> {
        uuid::Uuid::parse_str(text).map(JobId)
    }
}

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker, now or from its `run_at`.
    Queued,
    /// Claimed by a worker whose lease has not run out.
    Running,
    /// Done; its result, if any, is kept.
    Succeeded,
    /// Its last attempt failed; it runs again at its `run_at`.
    Failed,
    /// Every attempt failed (or its payload could not be read); its last
    /// error is kept.
    Dead,
    /// Cancelled before it finished.
    Cancelled,
}

impl JobState {
    /// The state as the status JSON and the SQL stores spell it:
    /// `queued`, `running`, `succeeded`, `failed`, `dead` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Succeeded => "succeeded",
            JobState::Failed => "failed",
            JobState::Dead => "dead",
            JobState::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Result<JobState, StoreError> {
        Ok(match text {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "succeeded" => JobState::Succeeded,
            "failed" => JobState::Failed,
            "dead" => JobState::Dead,
            "cancelled" => JobState::Cancelled,
            other => return Err(StoreError::Corrupt(format!("unknown job state `{other}`"))),
        })
    }

    /// Whether the job will not run again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Succeeded | JobState::Dead | JobState::Cancelled
        )
    }
}

/// A job to enqueue: its kind (which fn runs it), its queue, and its
/// serialized arguments, with defaults for the rest.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NewJob {
    /// The name the workers' [`Registry`] knows the job's fn by.
    pub kind: String,
    /// The queue workers take it from. Default: `"default"`.
    pub queue: String,
    /// The arguments, as the kind's fn reads them.
    pub payload: serde_json::Value,
    /// Attempts before the job is dead; at least 1. Default: 3.
    pub max_attempts: u32,
    /// How long one attempt may run. Default: 5 minutes.
    pub timeout: Duration,
    /// Not before this time. Default: now.
    pub run_at: Option<SystemTime>,
    /// A repeated enqueue with the same key returns the first job's id.
    pub idempotency_key: Option<String>,
    /// Among the due jobs of its queue, a higher priority is claimed
    /// first; equal priorities in the order they became due. Default: 0.
    pub priority: i16,
}

/// The queue of a job, or of a `#[background]` kind, that names none.
pub(crate) const DEFAULT_QUEUE: &str = "default";

impl NewJob {
    /// A job of `kind` with these arguments, on the `default` queue, with 3
    /// attempts of at most 5 minutes each, due now.
    pub fn new(kind: impl Into<String>, payload: serde_json::Value) -> NewJob {
        NewJob {
            kind: kind.into(),
            queue: DEFAULT_QUEUE.to_owned(),
            payload,
            max_attempts: 3,
            timeout: Duration::from_secs(300),
            run_at: None,
            idempotency_key: None,
            priority: 0,
        }
    }

    /// The queue workers take it from.
    pub fn queue(mut self, queue: impl Into<String>) -> NewJob {
        self.queue = queue.into();
        self
    }

    /// Attempts before the job is dead, the first included; 0 counts as 1.
    pub fn max_attempts(mut self, attempts: u32) -> NewJob {
        self.max_attempts = attempts.max(1);
        self
    }

    /// How long one attempt may run before it is stopped and retried.
    pub fn timeout(mut self, timeout: Duration) -> NewJob {
        self.timeout = timeout;
        self
    }

    /// Not before `at`; a time in the past is due at once.
    pub fn run_at(mut self, at: SystemTime) -> NewJob {
        self.run_at = Some(at);
        self
    }

    /// Not before `delay` from now.
    pub fn run_after(self, delay: Duration) -> NewJob {
        self.run_at(SystemTime::now() + delay)
    }

    /// A key that makes a repeated enqueue a no-op: an enqueue with a key
    /// the store already holds returns that job's id and adds nothing.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> NewJob {
        self.idempotency_key = Some(key.into());
        self
    }

    /// See [`NewJob::priority`](struct.NewJob.html#structfield.priority):
    /// higher runs first within the queue.
    pub fn priority(mut self, priority: i16) -> NewJob {
        self.priority = priority;
        self
    }
}

/// What a job's status shows. Its arguments are not part of it.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct Job {
    /// Its id, as [`Store::enqueue`] returned it.
    pub id: JobId,
    /// The name of the fn that runs it.
    pub kind: String,
    /// The queue it is on.
    pub queue: String,
    /// Where it is in its life.
    pub state: JobState,
    /// Attempts begun so far (a released attempt is not counted).
    pub attempts: u32,
    /// Attempts it may have in all, the first included.
    pub max_attempts: u32,
    /// 0 to 100, as the job last reported.
    pub progress: u8,
    /// The message of its last progress report.
    pub message: Option<String>,
    /// The last attempt's error.
    pub error: Option<String>,
    /// What its fn returned, as JSON, once it succeeded.
    pub result: Option<serde_json::Value>,
    /// A cancel was asked for while it ran; its worker stops it.
    pub cancel_requested: bool,
    /// When it was enqueued (milliseconds since the Unix epoch in JSON, as
    /// are the other times).
    #[serde(serialize_with = "millis::serialize")]
    pub created_at: SystemTime,
    /// When it last changed.
    #[serde(serialize_with = "millis::serialize")]
    pub updated_at: SystemTime,
    /// When it is due: when it runs next, or when its last attempt became
    /// due.
    #[serde(serialize_with = "millis::serialize")]
    pub run_at: SystemTime,
    /// When it ended (succeeded, dead or cancelled); `None` until then.
    #[serde(serialize_with = "millis::serialize_option")]
    pub finished_at: Option<SystemTime>,
    /// Higher is claimed first within its queue ([`NewJob::priority`]).
    pub priority: i16,
}

/// A job handed to a worker.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Claimed {
    /// The job's id; the worker names it in every write of the attempt.
    pub id: JobId,
    /// The name of the fn to run it with.
    pub kind: String,
    /// The queue it was claimed from.
    pub queue: String,
    /// Its arguments, as enqueued.
    pub payload: serde_json::Value,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// Attempts it may have in all: this one is its last when equal to
    /// `attempt`.
    pub max_attempts: u32,
    /// How long this attempt may run.
    pub timeout: Duration,
    /// When the job became due: its `run_at`, or the end of the lease it
    /// was taken back from.
    pub due_at: SystemTime,
}

/// A claim made with a finish ([`Store::finish_and_claim`]): up to
/// `limit` due jobs of `queue` for `worker`, leased for `lease`, as
/// [`Store::claim`] takes them.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct NextClaim {
    /// The queue to claim from.
    pub queue: String,
    /// The worker the jobs are leased to.
    pub worker: String,
    /// How long the lease lasts unless renewed.
    pub lease: Duration,
    /// The most jobs to claim.
    pub limit: usize,
}

impl NextClaim {
    /// Up to `limit` jobs of `queue` for `worker`, leased for `lease`.
    pub fn new(
        queue: impl Into<String>,
        worker: impl Into<String>,
        lease: Duration,
        limit: usize,
    ) -> NextClaim {
        NextClaim {
            queue: queue.into(),
            worker: worker.into(),
            lease,
            limit,
        }
    }
}

/// How an attempt ended.
#[derive(Clone, Debug)]
pub enum Finish {
    /// Done, with the result to keep (what the fn returned, as JSON).
    Succeeded(Option<serde_json::Value>),
    /// Failed; runs again at the given time.
    Retry {
        /// Why the attempt failed, shown in the job's status.
        error: String,
        /// When the next attempt is due.
        at: SystemTime,
    },
    /// Failed for good.
    Dead {
        /// Why, shown in the job's status.
        error: String,
    },
    /// Stopped because its cancellation was requested.
    Cancelled,
}

/// The tables of the SQL stores. Each store then adds the columns that
/// tables made by an earlier version lack ([`ADDED_COLUMNS`]), and the
/// indexes ([`INDEXES`]), which may read them.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
const TABLES: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS lanes_jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        queue TEXT NOT NULL,
        state TEXT NOT NULL,
        payload TEXT NOT NULL,
        attempts BIGINT NOT NULL,
        max_attempts BIGINT NOT NULL,
        timeout_ms BIGINT NOT NULL,
        run_at BIGINT NOT NULL,
        lease_until BIGINT,
        worker TEXT,
        progress BIGINT NOT NULL,
        message TEXT,
        error TEXT,
        result TEXT,
        cancel_requested BIGINT NOT NULL,
        idempotency_key TEXT UNIQUE,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        finished_at BIGINT,
        priority BIGINT NOT NULL DEFAULT 0
    )",
    // How many jobs bounded enqueues have added to each queue, ever: see
    // the stores' `Counted`.
    "CREATE TABLE IF NOT EXISTS lanes_jobs_added (queue TEXT PRIMARY KEY, jobs BIGINT NOT NULL)",
];

/// Columns added to `lanes_jobs` since its first version, with their
/// definitions, for a store to add where they are missing.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
const ADDED_COLUMNS: [(&str, &str); 1] = [("priority", "BIGINT NOT NULL DEFAULT 0")];

/// The indexes both SQL stores keep.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
const INDEXES: [&str; 3] = [
    // Partial indexes, so that a claim reads the next due jobs of its queue
    // in order instead of sorting every waiting one: by priority, then due
    // time (a claim skips a priority's jobs that are not due yet).
    "CREATE INDEX IF NOT EXISTS lanes_jobs_waiting ON lanes_jobs (queue, priority DESC, run_at) \
     WHERE state IN ('queued', 'failed')",
    "CREATE INDEX IF NOT EXISTS lanes_jobs_leases ON lanes_jobs (queue, lease_until) \
     WHERE state = 'running'",
    // Replaced by `lanes_jobs_waiting`, which orders by priority too.
    "DROP INDEX IF EXISTS lanes_jobs_due",
];

/// The indexes pages of jobs walk ([`Store::list`]): every job by creation,
/// and the dead ones (few, and looked for) on their own. `id` is how the id
/// column sorts, as in [`query::page_statement`].
#[cfg(any(feature = "sqlite", feature = "postgres"))]
fn page_indexes(id: &str) -> [String; 2] {
    [
        format!("CREATE INDEX IF NOT EXISTS lanes_jobs_created ON lanes_jobs (created_at, {id})"),
        format!(
            "CREATE INDEX IF NOT EXISTS lanes_jobs_dead ON lanes_jobs (created_at, {id}) \
             WHERE state = 'dead'"
        ),
    ]
}

/// The columns of a job's status, in [`Job`]'s order.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
const JOB_COLUMNS: &str = "id, kind, queue, state, attempts, max_attempts, progress, message, \
     error, result, cancel_requested, created_at, updated_at, run_at, finished_at, priority";

/// A retry of a dead or failed job ([`Store::retry`]), at `$1` (ms): due
/// now, a dead one with all its attempts again, its last error kept until
/// its next attempt ends. SQLite reads `$1` and `$2` as its first and
/// second parameters (named ones are numbered as they first appear).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
const RETRY: &str = "UPDATE lanes_jobs SET state = 'queued', \
     attempts = CASE WHEN state = 'dead' THEN 0 ELSE attempts END, run_at = $1, updated_at = $1, \
     finished_at = NULL, progress = 0, message = NULL, cancel_requested = 0 \
     WHERE id = $2 AND state IN ('dead', 'failed')";

/// How a [`Finish`] is kept in a SQL store's row.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) struct EndingRow {
    pub(crate) state: JobState,
    pub(crate) error: Option<String>,
    pub(crate) result: Option<String>,
    /// A retry's time; else the job keeps its `run_at`.
    pub(crate) run_at: Option<i64>,
    pub(crate) finished_at: Option<i64>,
}

#[cfg(any(feature = "sqlite", feature = "postgres"))]
impl Finish {
    /// The columns this ending writes, at `now` (milliseconds).
    pub(crate) fn row(&self, now: i64) -> EndingRow {
        let ended = |state| EndingRow {
            state,
            error: None,
            result: None,
            run_at: None,
            finished_at: Some(now),
        };
        match self {
            Finish::Succeeded(result) => EndingRow {
                result: result.as_ref().map(ToString::to_string),
                ..ended(JobState::Succeeded)
            },
            Finish::Retry { error, at } => EndingRow {
                error: Some(error.clone()),
                run_at: Some(millis::from(*at)),
                finished_at: None,
                ..ended(JobState::Failed)
            },
            Finish::Dead { error } => EndingRow {
                error: Some(error.clone()),
                ..ended(JobState::Dead)
            },
            Finish::Cancelled => ended(JobState::Cancelled),
        }
    }
}

/// What a worker learns when it renews its lease.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lease {
    /// Still the job's worker, until the new lease ends.
    Held,
    /// Still the job's worker, and its cancellation was requested.
    CancelRequested,
    /// No longer the job's worker: its lease ran out and the job was
    /// claimed again, or it ended otherwise.
    Lost,
}

/// Why a store refused.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The store, or the job's queue, holds as many unfinished jobs
    /// (queued, running, or failed and waiting for their retry) as its
    /// bound allows: `limit`. Nothing was enqueued; a handler answers
    /// `503` with `Retry-After`.
    Full {
        /// Whose bound: the store's or the queue's.
        bound: Bound,
        /// That bound, in unfinished jobs.
        limit: u64,
    },
    /// The database refused or could not be reached.
    Database(String),
    /// A stored row could not be read back.
    Corrupt(String),
    /// A job's arguments could not be serialized (a map with non-text
    /// keys, a `Serialize` impl that failed); nothing was enqueued.
    Payload(String),
    /// No store is set for `#[background]` fns, and the default one (SQLite)
    /// is not compiled in.
    NoStore,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Full {
                bound: Bound::Store,
                limit,
            } => write!(
                f,
                "the job store is full: it holds {limit} unfinished jobs, its bound; the job was \
                 not enqueued: retry once jobs have finished, or raise the bound with \
                 `StoreOptions::max_unfinished`"
            ),
            StoreError::Full {
                bound: Bound::Queue(queue),
                limit,
            } => write!(
                f,
                "the job queue `{queue}` is full: it holds {limit} unfinished jobs, its bound; the \
                 job was not enqueued: retry once jobs have finished, or raise the bound with \
                 `StoreOptions::queue_max_unfinished`"
            ),
            StoreError::Database(why) => write!(f, "the job store's database failed: {why}"),
            StoreError::Corrupt(why) => write!(f, "a stored job could not be read: {why}"),
            StoreError::Payload(why) => write!(f, "the job was not enqueued: {why}"),
            StoreError::NoStore => f.write_str(
                "no job store: set one with `lanes::Config::job_store`, or enable the `sqlite` feature for the default",
            ),
        }
    }
}

impl std::error::Error for StoreError {}

/// Which bound refused an enqueue: see [`StoreError::Full`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Bound {
    /// The store's, over all its queues ([`StoreOptions::max_unfinished`]).
    Store,
    /// The named queue's ([`StoreOptions::queue_max_unfinished`]).
    Queue(String),
}

/// The store-wide bound of a store opened without one of its own: past
/// 100,000 unfinished jobs, an enqueue is refused rather than letting the
/// store grow without end.
pub const DEFAULT_MAX_UNFINISHED: u64 = 100_000;

/// How a store is bounded and how durable its enqueues are, for
/// [`Store::sqlite_with`], [`Store::postgres_with`] and
/// [`Store::memory_with`].
///
/// ```
/// use lanes::jobs::{Durability, StoreOptions};
///
/// let options = StoreOptions::new()
///     .max_unfinished(50_000)
///     .queue_max_unfinished("exports", 500)
///     .durability(Durability::PowerLoss);
/// ```
///
/// Every instance sharing one PostgreSQL schema should open it with the
/// same options: each checks the bounds it was given.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct StoreOptions {
    max_unfinished: Option<u64>,
    queue_max_unfinished: std::collections::HashMap<String, u64>,
    durability: Durability,
}

impl Default for StoreOptions {
    fn default() -> StoreOptions {
        StoreOptions {
            max_unfinished: Some(DEFAULT_MAX_UNFINISHED),
            queue_max_unfinished: std::collections::HashMap::new(),
            durability: Durability::default(),
        }
    }
}

impl StoreOptions {
    /// At most [`DEFAULT_MAX_UNFINISHED`] unfinished jobs, no queue bound,
    /// enqueues durable across power loss.
    pub fn new() -> StoreOptions {
        StoreOptions::default()
    }

    /// At most `limit` unfinished jobs (queued, running, or failed and
    /// waiting for their retry) in the store, all queues together; past
    /// it, an enqueue fails with [`StoreError::Full`]. An idempotent repeat
    /// of a stored job is never refused: it adds nothing.
    pub fn max_unfinished(mut self, limit: u64) -> StoreOptions {
        self.max_unfinished = Some(limit);
        self
    }

    /// No store-wide bound (queue bounds still apply): the SQL stores then
    /// skip the count an enqueue otherwise makes, and grow as long as
    /// enqueues outpace the workers.
    pub fn unbounded(mut self) -> StoreOptions {
        self.max_unfinished = None;
        self
    }

    /// At most `limit` unfinished jobs in `queue`, within the store's
    /// bound; other queues are bound by the store's alone.
    pub fn queue_max_unfinished(mut self, queue: impl Into<String>, limit: u64) -> StoreOptions {
        self.queue_max_unfinished.insert(queue.into(), limit);
        self
    }

    /// What an enqueue (and a cancel) answered survives; see [`Durability`].
    /// The in-memory store keeps nothing across a process's end.
    pub fn durability(mut self, durability: Durability) -> StoreOptions {
        self.durability = durability;
        self
    }

    /// The bound that refuses one more job in `queue`, given the unfinished
    /// jobs of the store and of that queue.
    pub(crate) fn refusal(&self, queue: &str, in_store: u64, in_queue: u64) -> Option<StoreError> {
        if let Some(limit) = self.max_unfinished.filter(|limit| in_store >= *limit) {
            return Some(StoreError::Full {
                bound: Bound::Store,
                limit,
            });
        }
        let limit = *self.queue_max_unfinished.get(queue)?;
        (in_queue >= limit).then(|| StoreError::Full {
            bound: Bound::Queue(queue.to_owned()),
            limit,
        })
    }

    pub(crate) fn bounds_queue(&self, queue: &str) -> bool {
        self.queue_max_unfinished.contains_key(queue)
    }
}

/// What an enqueue answered (`202 Accepted` from a handler) survives, on
/// the SQL stores. Cancels follow the same setting; what workers write
/// (claims, lease renewals, progress, finishes) is always written the
/// cheaper way, since losing it only runs a job again (delivery is at
/// least once).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// The default: an answered enqueue survives power loss and an OS
    /// crash. SQLite answers it once its WAL file is synced to disk, by a
    /// thread of its own, outside the write lock; PostgreSQL waits for its
    /// WAL flush (`synchronous_commit = on`). Enqueues made at once share
    /// one sync, so the cost is one disk sync per batch, and it delays
    /// only the enqueues and cancels that wait for it.
    #[default]
    PowerLoss,
    /// An answered enqueue survives a crash or kill of the app's process,
    /// but a power cut or an OS crash (or, on PostgreSQL, a crash of the
    /// database server) may lose the last ones: SQLite answers at its
    /// commit, without a disk sync, PostgreSQL without waiting for its WAL
    /// flush (`synchronous_commit = off`).
    ProcessCrash,
}

/// Counts an enqueue refused by a bound, by queue.
fn count_refusal(queue: &str) {
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    DESCRIBED.call_once(|| {
        metrics::describe_counter!(
            "lanes_jobs_refused_total",
            "Enqueues refused: `reason` is `full` when the store or the queue held its bound of unfinished jobs."
        );
    });
    metrics::counter!("lanes_jobs_refused_total", "queue" => queue.to_owned(), "reason" => "full")
        .increment(1);
}

/// Where jobs are kept. Cloning shares the store.
#[derive(Clone, Debug)]
pub struct Store(Backend);

#[derive(Clone, Debug)]
enum Backend {
    Memory(memory::MemoryStore),
    #[cfg(feature = "sqlite")]
    Sqlite(sqlite::SqliteStore),
    #[cfg(feature = "postgres")]
    Postgres(postgres::PostgresStore),
}

/// The same call on whichever store is behind `$store`: `$memory` on the
/// in-memory one, `$sql` awaited on a SQL one (the SQLite and PostgreSQL
/// stores have the same methods).
macro_rules! on_store {
    ($store:expr, memory($m:ident) => $memory:expr, sql($s:ident) => $sql:expr $(,)?) => {
        match &$store.0 {
            Backend::Memory($m) => $memory,
            #[cfg(feature = "sqlite")]
            Backend::Sqlite($s) => $sql.await,
            #[cfg(feature = "postgres")]
            Backend::Postgres($s) => $sql.await,
        }
    };
}

impl Store {
    /// A store in this process's memory, holding at most `capacity`
    /// unfinished jobs (enqueueing more fails with [`StoreError::Full`]) and
    /// the last `capacity` finished ones.
    pub fn memory(capacity: usize) -> Store {
        Store::memory_with(StoreOptions::new().max_unfinished(capacity as u64))
    }

    /// A store in this process's memory with the bounds of `options`; it
    /// keeps the last finished jobs up to the store's bound (up to
    /// [`DEFAULT_MAX_UNFINISHED`] when unbounded). Durability does not
    /// apply: nothing outlives the process.
    pub fn memory_with(options: StoreOptions) -> Store {
        Store(Backend::Memory(memory::MemoryStore::new(options)))
    }

    /// A store in the SQLite file at `path`, created if missing, in WAL
    /// mode, with the default [`StoreOptions`]: at most
    /// [`DEFAULT_MAX_UNFINISHED`] unfinished jobs, enqueues durable across
    /// power loss.
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    pub async fn sqlite(path: impl AsRef<std::path::Path>) -> Result<Store, StoreError> {
        Store::sqlite_with(path, StoreOptions::new()).await
    }

    /// A store in the SQLite file at `path` with `options`. The bounds hold
    /// for every store handle on the file (each enqueue counts and adds in
    /// one write transaction), if each is opened with the same options.
    #[cfg(feature = "sqlite")]
    #[cfg_attr(docsrs, doc(cfg(feature = "sqlite")))]
    pub async fn sqlite_with(
        path: impl AsRef<std::path::Path>,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        sqlite::SqliteStore::open(path.as_ref(), options)
            .await
            .map(|s| Store(Backend::Sqlite(s)))
    }

    /// A store in the PostgreSQL database at `url` (`postgres://...`),
    /// in the given schema, created if missing, with the default
    /// [`StoreOptions`]: at most [`DEFAULT_MAX_UNFINISHED`] unfinished
    /// jobs, enqueues durable across power loss.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub async fn postgres(url: &str, schema: &str) -> Result<Store, StoreError> {
        Store::postgres_with(url, schema, StoreOptions::new()).await
    }

    /// A store in the PostgreSQL database at `url`, in `schema`, with
    /// `options`. The bounds hold across every instance on the schema
    /// (each enqueue counts and adds under one transaction-scoped lock of
    /// the schema), if each is opened with the same options.
    #[cfg(feature = "postgres")]
    #[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
    pub async fn postgres_with(
        url: &str,
        schema: &str,
        options: StoreOptions,
    ) -> Result<Store, StoreError> {
        postgres::PostgresStore::open(url, schema, options)
            .await
            .map(|s| Store(Backend::Postgres(s)))
    }

    /// Adds a job and returns its id at once; with an idempotency key
    /// already used, returns the first job's id and adds nothing. Past a
    /// bound of the store or of the job's queue, fails with
    /// [`StoreError::Full`] and counts the refusal in
    /// `lanes_jobs_refused_total{queue, reason="full"}`.
    pub async fn enqueue(&self, job: NewJob) -> Result<JobId, StoreError> {
        let queue = job.queue.clone();
        let enqueued = on_store!(
            self,
            memory(store) => store.enqueue(job),
            sql(store) => store.enqueue(job),
        );
        if let Err(StoreError::Full { .. }) = &enqueued {
            count_refusal(&queue);
        }
        enqueued
    }

    /// Hands up to `limit` jobs of `queue` that are due to `worker`, leased
    /// for `lease`: queued and failed jobs whose time has come, and running
    /// jobs whose worker's lease ran out. A job whose lease ran out on its
    /// last attempt is marked dead instead.
    ///
    /// The writes about a claimed job ([`renew`](Self::renew),
    /// [`progress`](Self::progress), [`finish`](Self::finish),
    /// [`release`](Self::release)) name the same `worker`, and are refused
    /// once another claim holds the job. [`Workers`] give each claim a
    /// `worker` of its own, so that a stale attempt is fenced out even when
    /// the same process claimed the job again.
    pub async fn claim(
        &self,
        queue: &str,
        worker: &str,
        lease: Duration,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let next = NextClaim::new(queue, worker, lease, limit);
        on_store!(
            self,
            memory(store) => Ok(store.claim(&next)),
            sql(store) => store.claim(next),
        )
    }

    /// Extends `worker`'s lease on a running job.
    pub async fn renew(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
    ) -> Result<Lease, StoreError> {
        on_store!(
            self,
            memory(store) => Ok(store.renew(id, worker, lease)),
            sql(store) => store.renew(id, worker, lease),
        )
    }

    /// Records a running job's progress (0 to 100) and message. False if
    /// `worker` no longer holds the job.
    pub async fn progress(
        &self,
        id: JobId,
        worker: &str,
        percent: u8,
        message: Option<&str>,
    ) -> Result<bool, StoreError> {
        let percent = percent.min(100);
        on_store!(
            self,
            memory(store) => Ok(store.progress(id, worker, percent, message)),
            sql(store) => store.progress(id, worker, percent, message),
        )
    }

    /// Records how `worker`'s attempt ended. False, and nothing recorded, if
    /// `worker` no longer holds the job.
    pub async fn finish(&self, id: JobId, worker: &str, how: Finish) -> Result<bool, StoreError> {
        self.end(id, worker, how, None)
            .await
            .map(|(recorded, _)| recorded)
    }

    /// [`finish`](Self::finish), and the claim `next` in the same round
    /// trip to the store, as a worker whose slot just freed makes it:
    /// whether the finish was recorded, and the jobs claimed (the claim is
    /// made either way). It may leave jobs whose lease ran out to the next
    /// [`claim`](Self::claim).
    pub async fn finish_and_claim(
        &self,
        id: JobId,
        worker: &str,
        how: Finish,
        next: NextClaim,
    ) -> Result<(bool, Vec<Claimed>), StoreError> {
        self.end(id, worker, how, Some(next)).await
    }

    async fn end(
        &self,
        id: JobId,
        worker: &str,
        how: Finish,
        next: Option<NextClaim>,
    ) -> Result<(bool, Vec<Claimed>), StoreError> {
        on_store!(
            self,
            memory(store) => {
                let recorded = store.finish(id, worker, how);
                Ok((recorded, next.map(|next| store.claim(&next)).unwrap_or_default()))
            },
            sql(store) => store.finish(id, worker, how, next),
        )
    }

    /// Cancels a job: at once if it is waiting, by request if it is
    /// running. The request reaches a worker in this process at once, one
    /// in another process sharing a PostgreSQL store through `NOTIFY`, and
    /// any other at its next lease renewal. Returns the job's state after
    /// the call, or `None` if there is no such job.
    pub async fn cancel(&self, id: JobId) -> Result<Option<JobState>, StoreError> {
        let state = on_store!(
            self,
            memory(store) => Ok(store.cancel(id)),
            sql(store) => store.cancel(id),
        )?;
        if state == Some(JobState::Running) {
            cancels::request(id);
        }
        Ok(state)
    }

    /// Gives a running job back unfinished, as a worker that stops does:
    /// it is queued again at once, its lease cleared and this attempt not
    /// counted, so the next worker takes it without waiting for the lease to
    /// run out. False if `worker` no longer holds the job.
    pub async fn release(&self, id: JobId, worker: &str) -> Result<bool, StoreError> {
        on_store!(
            self,
            memory(store) => Ok(store.release(id, worker)),
            sql(store) => store.release(id, worker),
        )
    }

    /// How many jobs of `queue` wait for a worker: queued, or failed and
    /// waiting for their retry, due or not.
    pub async fn waiting(&self, queue: &str) -> Result<u64, StoreError> {
        on_store!(
            self,
            memory(store) => Ok(store.waiting(queue)),
            sql(store) => store.waiting(queue),
        )
    }

    /// How many jobs have not ended: queued, running, or failed and
    /// waiting for their retry.
    pub async fn unfinished(&self) -> Result<u64, StoreError> {
        on_store!(
            self,
            memory(store) => Ok(store.unfinished()),
            sql(store) => store.unfinished(),
        )
    }

    /// The job's status, or `None` if the store holds no job of that id
    /// (never enqueued, or a finished job the memory store has let go).
    pub async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        on_store!(
            self,
            memory(store) => Ok(store.get(id)),
            sql(store) => store.get(id),
        )
    }

    /// A page of the jobs that match `query`, newest first; pass its
    /// `next` as the next query's [`after`](JobQuery::after) for the page
    /// that follows. The SQL stores walk an index of creation times from
    /// the cursor down, so a page costs the same deep in a long history as
    /// on top; a queue or kind filter is checked on the way (a rare one
    /// reads further), and the dead jobs have an index of their own.
    pub async fn list(&self, query: &JobQuery) -> Result<JobPage, StoreError> {
        on_store!(
            self,
            memory(store) => Ok(store.list(query)),
            sql(store) => store.list(query),
        )
    }

    /// How many jobs each queue holds queued, running, failed (waiting for
    /// a retry) and dead, by queue; counted through partial indexes, so
    /// the cost follows those jobs, not the history.
    pub async fn counts(&self) -> Result<Vec<QueueCounts>, StoreError> {
        on_store!(
            self,
            memory(store) => Ok(store.counts()),
            sql(store) => store.counts(),
        )
    }

    /// Deletes a job that has ended (succeeded, dead or cancelled), with
    /// its result and its idempotency key, and returns the state it was
    /// in; `None` if there is no such job. A job that has not ended is
    /// kept, and its state says so: cancel it first.
    pub async fn delete(&self, id: JobId) -> Result<Option<JobState>, StoreError> {
        on_store!(
            self,
            memory(store) => Ok(store.delete(id)),
            sql(store) => store.delete(id),
        )
    }

    /// Runs a dead or failed job again, now: see [`Retried`]; `None` if
    /// there is no such job. A dead job becomes unfinished again, so the
    /// store's bounds apply as to an enqueue ([`StoreError::Full`]), and
    /// the retry is as durable as an enqueue.
    pub async fn retry(&self, id: JobId) -> Result<Option<Retried>, StoreError> {
        let retried = on_store!(
            self,
            memory(store) => store.retry(id),
            sql(store) => store.retry(id),
        );
        if let Err(StoreError::Full { .. }) = &retried
            && let Ok(Some(job)) = self.get(id).await
        {
            count_refusal(&job.queue);
        }
        retried
    }

    /// Wakeups for a worker whose claim came back empty: each job enqueued
    /// (in this process, or in another through PostgreSQL's `NOTIFY`) ends
    /// a wait. Take it before claiming, so that no enqueue is missed.
    pub async fn wakeups(&self) -> Result<Wakeups, StoreError> {
        let enqueued = on_store!(
            self,
            memory(store) => Ok(store.enqueued.subscribe()),
            sql(store) => store.wakeups(),
        )?;
        Ok(Wakeups(enqueued))
    }
}

/// The file the default store keeps jobs in, in the working directory.
pub const DEFAULT_SQLITE_FILE: &str = "lanes-jobs.db";

/// The store `#[background]` fns enqueue into: the one set with
/// [`Config::job_store`](crate::Config::job_store), or else SQLite in
/// [`DEFAULT_SQLITE_FILE`], opened on first use.
pub async fn store() -> Result<Store, StoreError> {
    if let Some(store) = &crate::config::lanes().job_store {
        return Ok(store.clone());
    }
    default_store().await
}

#[cfg(feature = "sqlite")]
async fn default_store() -> Result<Store, StoreError> {
    static DEFAULT: tokio::sync::OnceCell<Store> = tokio::sync::OnceCell::const_new();
    DEFAULT
        .get_or_try_init(|| async {
            let store = Store::sqlite(DEFAULT_SQLITE_FILE).await?;
            tracing::info!(
                file = DEFAULT_SQLITE_FILE,
                "lanes: background jobs are kept in SQLite (set another store with `lanes::Config::job_store`)"
            );
            Ok(store)
        })
        .await
        .cloned()
}

#[cfg(not(feature = "sqlite"))]
async fn default_store() -> Result<Store, StoreError> {
    Err(StoreError::NoStore)
}

/// Starts workers for every `#[background]` fn ([`Registry::registered`])
/// on the default [`store`], on the current tokio runtime. Fails if the
/// store cannot be opened, or if a kind the workers would claim takes a
/// `State<T>` they were not given ([`WorkerConfig::state`]).
///
/// ```no_run
/// # async fn example() -> Result<(), lanes::jobs::StartError> {
/// use std::time::Duration;
///
/// let workers = lanes::jobs::start_workers(lanes::jobs::WorkerConfig::default()).await?;
/// // ... serve until asked to stop ...
/// workers.shutdown(Duration::from_secs(10)).await;
/// # Ok(()) }
/// ```
pub async fn start_workers(config: WorkerConfig) -> Result<Workers, StartError> {
    Workers::start(store().await?, Registry::registered(), config)
}

/// See [`Store::wakeups`].
#[derive(Debug)]
pub struct Wakeups(tokio::sync::watch::Receiver<u64>);

impl Wakeups {
    /// Returns once a job has been enqueued since the last wait (at once if
    /// one already has), or after `at_most`.
    pub async fn wait(&mut self, at_most: Duration) {
        let _ = tokio::time::timeout(at_most, self.0.changed()).await;
        self.0.mark_unchanged();
    }
}

/// A time kept as milliseconds since the Unix epoch.
pub(crate) fn from_millis(millis: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0))
}

/// Times as milliseconds since the Unix epoch, as the SQL stores keep them.
pub(crate) mod millis {
    use super::*;

    pub(crate) fn from(time: SystemTime) -> i64 {
        time.duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }

    pub(crate) fn now() -> i64 {
        from(SystemTime::now())
    }

    pub(crate) fn serialize<S: serde::Serializer>(
        time: &SystemTime,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_i64(from(*time))
    }

    pub(crate) fn serialize_option<S: serde::Serializer>(
        time: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => s.serialize_some(&from(*time)),
            None => s.serialize_none(),
        }
    }
}
