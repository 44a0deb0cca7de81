//! The SQLite store, on rusqlite: one thread owns the connection and its
//! prepared statements, and every call reaches it through a channel.
//!
//! The thread takes whatever calls are waiting and runs them in one
//! transaction (each in a savepoint of its own, so that one call's error
//! undoes only its writes), then answers them once the transaction has
//! committed. A lone call goes out at once; under load one commit carries
//! many. Commits are made with `synchronous = NORMAL` (in WAL mode: no
//! disk sync, yet durable across a process kill).
//!
//! Under [`Durability::PowerLoss`], enqueues and cancels are answered only
//! once the WAL file holding their commit has been synced to disk. The
//! sync is made by a second thread, outside SQLite's write lock: the owner
//! thread goes on with the next batches meanwhile (a worker's finish never
//! waits for a disk sync), and one sync covers every commit made before it
//! began. SQLite recovers a WAL up to its last whole commit, and a
//! checkpoint syncs the WAL before it copies it, so a synced commit
//! survives power loss.
//!
//! Nothing is answered before its commit, so an answered enqueue survives
//! a crash in the middle of a later batch: SQLite's commit is atomic.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OptionalExtension, Row, params};
use tokio::sync::{mpsc, oneshot, watch};

use super::query::{COUNTS, PageValue, page_statement};
use super::{
    Claimed, Durability, Finish, JOB_COLUMNS, Job, JobId, JobPage, JobQuery, JobState, Lease,
    NewJob, NextClaim, QueueCounts, Retried, StoreError, StoreOptions, millis,
};

/// Calls waiting for the owner thread; past this, a caller awaits its turn.
const WAITING: usize = 4096;

/// Most calls in one transaction: enough to carry a burst in one commit,
/// few enough that the first call of a batch is not kept waiting long.
const MOST: usize = 512;

/// How often each queue is swept for expired leases, at most.
const SWEEP_EVERY: i64 = 100;

/// The unfinished jobs are counted through the due and lease indexes: a
/// third index, kept at every change of state, cost more than it saved.
const DROP_UNFINISHED_INDEX: &str = "DROP INDEX IF EXISTS lanes_jobs_unfinished";

/// The columns a claim returns, in the order [`read_claimed`] reads them;
/// a macro, so that the claims below are whole constants.
macro_rules! claimed_columns {
    () => {
        "id, kind, queue, payload, attempts, max_attempts, timeout_ms, run_at"
    };
}

/// The claims, each through its partial index: jobs whose worker's lease
/// ran out, and due jobs. `run_at` ends up as the time the job became due
/// (SET reads the old row).
const CLAIM_EXPIRED: &str = concat!(
    "UPDATE lanes_jobs SET state = 'running', attempts = attempts + 1, \
     worker = ?1, lease_until = ?2, updated_at = ?3, run_at = lease_until \
     WHERE id IN (SELECT id FROM lanes_jobs WHERE queue = ?4 AND state = 'running' \
     AND lease_until <= ?3 ORDER BY lease_until LIMIT ?5) RETURNING ",
    claimed_columns!()
);
const CLAIM_READY: &str = concat!(
    "UPDATE lanes_jobs SET state = 'running', attempts = attempts + 1, \
     worker = ?1, lease_until = ?2, updated_at = ?3 \
     WHERE id IN (SELECT id FROM lanes_jobs WHERE queue = ?4 \
     AND state IN ('queued', 'failed') AND run_at <= ?3 ORDER BY priority DESC, run_at LIMIT ?5) \
     RETURNING ",
    claimed_columns!()
);

fn database(error: rusqlite::Error) -> StoreError {
    StoreError::Database(error.to_string())
}

fn stopped() -> StoreError {
    StoreError::Database("the SQLite job store's thread stopped (it panicked)".to_owned())
}

/// A call for the owner thread: its statements, run inside the batch's
/// transaction (or not at all, given the error that kept the transaction
/// from starting).
type Call = Box<dyn FnOnce(Result<&mut Owner, StoreError>) -> Ran + Send>;

/// A call that ran: whether its work succeeded (else its savepoint is
/// undone), and its answer, given how the batch's commit went.
struct Ran {
    succeeded: bool,
    answer: Answer,
}

type Answer = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Batches of answers waiting for a sync; past this, the owner thread
/// waits for the syncing thread.
const SYNCS_WAITING: usize = 64;

/// Commits between two checkpoints asked of the checkpointing thread.
const CHECKPOINT_EVERY: u64 = 64;

/// Past this size, the owner thread checkpoints the WAL itself and starts
/// it over: under sustained writes the checkpointing thread seldom finds
/// the moment the WAL can restart, and the file would grow without end.
const WAL_MOST: u64 = 64 << 20;

struct Request {
    write: Write,
    call: Call,
}

/// What a call writes, which says what its commit must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Write {
    /// What workers write, and reads: answered at the commit.
    Worker,
    /// Answered once durable; its commit wakes the workers waiting for
    /// jobs, who may take the job before the sync (at least once: a job
    /// lost to a power cut before its enqueue was answered may have run).
    Enqueue,
    /// Answered once durable.
    Cancel,
}

#[derive(Clone, Debug)]
pub(super) struct SqliteStore {
    requests: mpsc::Sender<Request>,
    enqueued: std::sync::Arc<watch::Sender<u64>>,
}

impl SqliteStore {
    pub(super) async fn open(
        path: &std::path::Path,
        options: StoreOptions,
    ) -> Result<SqliteStore, StoreError> {
        let (requests, waiting) = mpsc::channel(WAITING);
        let (opened, open) = oneshot::channel();
        let path = path.to_owned();
        let enqueued = std::sync::Arc::new(watch::Sender::new(0));
        let wakes = enqueued.clone();
        std::thread::Builder::new()
            .name("lanes-sqlite".to_owned())
            .spawn(move || match Owner::open(&path, options, wakes) {
                Ok(owner) => {
                    let _ = opened.send(Ok(()));
                    owner.serve(waiting);
                }
                Err(error) => {
                    let _ = opened.send(Err(error));
                }
            })
            .map_err(|e| StoreError::Database(format!("could not start its thread: {e}")))?;
        open.await.map_err(|_| stopped())??;
        Ok(SqliteStore { requests, enqueued })
    }

    /// Runs `work` on the owner thread and returns its answer once its
    /// batch has committed.
    async fn call<T: Send + 'static>(
        &self,
        write: Write,
        work: impl FnOnce(&mut Owner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = oneshot::channel();
        let call: Call = Box::new(move |owner| {
            let result = owner.and_then(work);
            Ran {
                succeeded: result.is_ok(),
                answer: Box::new(move |committed| {
                    let _ = answer.send(committed.and(result));
                }),
            }
        });
        self.requests
            .send(Request { write, call })
            .await
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }

    pub(super) async fn enqueue(&self, job: NewJob) -> Result<JobId, StoreError> {
        self.call(Write::Enqueue, move |owner| owner.enqueue(job))
            .await
    }

    pub(super) async fn claim(&self, next: NextClaim) -> Result<Vec<Claimed>, StoreError> {
        self.call(Write::Worker, move |owner| owner.claim(&next))
            .await
    }

    pub(super) async fn finish(
        &self,
        id: JobId,
        worker: &str,
        how: Finish,
        next: Option<NextClaim>,
    ) -> Result<(bool, Vec<Claimed>), StoreError> {
        let worker = worker.to_owned();
        self.call(Write::Worker, move |owner| {
            let recorded = owner.finish(id, &worker, how)?;
            let claimed = match next {
                Some(next) => owner.claim(&next)?,
                None => Vec::new(),
            };
            Ok((recorded, claimed))
        })
        .await
    }

    pub(super) async fn renew(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
    ) -> Result<Lease, StoreError> {
        let worker = worker.to_owned();
        self.call(Write::Worker, move |owner| {
            let now = millis::now();
            let cancel: Option<i64> = owner
                .connection
                .prepare_cached(
                    "UPDATE lanes_jobs SET lease_until = ?1, updated_at = ?2 \
                     WHERE id = ?3 AND worker = ?4 AND state = 'running' RETURNING cancel_requested",
                )
                .and_then(|mut statement| {
                    statement
                        .query_row(
                            params![now + millis_of(lease), now, id.to_string(), worker],
                            |row| row.get(0),
                        )
                        .optional()
                })
                .map_err(database)?;
            Ok(match cancel {
                None => Lease::Lost,
                Some(0) => Lease::Held,
                Some(_) => Lease::CancelRequested,
            })
        })
        .await
    }

    pub(super) async fn progress(
        &self,
        id: JobId,
        worker: &str,
        percent: u8,
        message: Option<&str>,
    ) -> Result<bool, StoreError> {
        let (worker, message) = (worker.to_owned(), message.map(str::to_owned));
        self.call(Write::Worker, move |owner| {
            owner.changed(
                "UPDATE lanes_jobs SET progress = ?1, message = ?2, updated_at = ?3 \
                 WHERE id = ?4 AND worker = ?5 AND state = 'running'",
                params![
                    i64::from(percent),
                    message,
                    millis::now(),
                    id.to_string(),
                    worker
                ],
            )
        })
        .await
    }

    pub(super) async fn release(&self, id: JobId, worker: &str) -> Result<bool, StoreError> {
        let worker = worker.to_owned();
        self.call(Write::Worker, move |owner| {
            let now = millis::now();
            owner.changed(
                "UPDATE lanes_jobs SET state = 'queued', attempts = attempts - 1, worker = NULL, \
                 lease_until = NULL, run_at = ?1, updated_at = ?1 \
                 WHERE id = ?2 AND worker = ?3 AND state = 'running'",
                params![now, id.to_string(), worker],
            )
        })
        .await
    }

    pub(super) async fn cancel(&self, id: JobId) -> Result<Option<JobState>, StoreError> {
        self.call(Write::Cancel, move |owner| {
            let (now, id) = (millis::now(), id.to_string());
            owner.changed(
                "UPDATE lanes_jobs SET state = 'cancelled', finished_at = ?1, updated_at = ?1 \
                 WHERE id = ?2 AND state IN ('queued', 'failed')",
                params![now, id],
            )?;
            owner.changed(
                "UPDATE lanes_jobs SET cancel_requested = 1, updated_at = ?1 \
                 WHERE id = ?2 AND state = 'running'",
                params![now, id],
            )?;
            owner.state_of(&id)
        })
        .await
    }

    pub(super) async fn waiting(&self, queue: &str) -> Result<u64, StoreError> {
        let queue = queue.to_owned();
        self.call(Write::Worker, move |owner| {
            owner.count(
                "SELECT COUNT(*) FROM lanes_jobs WHERE queue = ?1 AND state IN ('queued', 'failed')",
                [queue],
            )
        })
        .await
    }

    pub(super) async fn unfinished(&self) -> Result<u64, StoreError> {
        self.call(Write::Worker, |owner| owner.count_unfinished())
            .await
    }

    pub(super) async fn wakeups(&self) -> Result<watch::Receiver<u64>, StoreError> {
        Ok(self.enqueued.subscribe())
    }

    pub(super) async fn list(&self, query: &JobQuery) -> Result<JobPage, StoreError> {
        let query = query.clone();
        self.call(Write::Worker, move |owner| {
            let (sql, values) = page_statement(&query, |n| format!("?{n}"), "id");
            let values = values.into_iter().map(|value| match value {
                PageValue::Text(text) => rusqlite::types::Value::Text(text),
                PageValue::Integer(n) => rusqlite::types::Value::Integer(n),
            });
            let mut statement = owner.connection.prepare_cached(&sql).map_err(database)?;
            let rows = statement
                .query_map(rusqlite::params_from_iter(values), read_job)
                .map_err(database)?;
            let jobs = rows
                .map(|row| row.map_err(database)?)
                .collect::<Result<_, _>>()?;
            Ok(query.page(jobs))
        })
        .await
    }

    pub(super) async fn counts(&self) -> Result<Vec<QueueCounts>, StoreError> {
        self.call(Write::Worker, |owner| {
            let mut rows = Vec::new();
            for sql in COUNTS {
                let mut statement = owner.connection.prepare_cached(sql).map_err(database)?;
                let found = statement
                    .query_map([], |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, String>(1)?,
                            row.get::<_, i64>(2)?,
                        ))
                    })
                    .map_err(database)?;
                for row in found {
                    let (queue, state, jobs) = row.map_err(database)?;
                    rows.push((
                        queue,
                        JobState::parse(&state)?,
                        u64::try_from(jobs).unwrap_or(0),
                    ));
                }
            }
            Ok(QueueCounts::from_rows(rows))
        })
        .await
    }

    /// Durable as a cancel.
    pub(super) async fn delete(&self, id: JobId) -> Result<Option<JobState>, StoreError> {
        self.call(Write::Cancel, move |owner| {
            let id = id.to_string();
            let deleted: Option<String> = owner
                .connection
                .prepare_cached(
                    "DELETE FROM lanes_jobs WHERE id = ?1 \
                     AND state IN ('succeeded', 'dead', 'cancelled') RETURNING state",
                )
                .and_then(|mut statement| statement.query_row([&id], |row| row.get(0)).optional())
                .map_err(database)?;
            match deleted {
                Some(state) => JobState::parse(&state).map(Some),
                // Unknown, or not ended: kept.
                None => owner.state_of(&id),
            }
        })
        .await
    }

    /// Durable as an enqueue, and it wakes the workers as one does.
    pub(super) async fn retry(&self, id: JobId) -> Result<Option<Retried>, StoreError> {
        self.call(Write::Enqueue, move |owner| owner.retry(id))
            .await
    }

    pub(super) async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        self.call(Write::Worker, move |owner| {
            owner
                .connection
                .prepare_cached(&format!(
                    "SELECT {JOB_COLUMNS} FROM lanes_jobs WHERE id = ?1"
                ))
                .and_then(|mut statement| {
                    statement.query_row([id.to_string()], read_job).optional()
                })
                .map_err(database)?
                .transpose()
        })
        .await
    }
}

/// The thread that holds the connection, and what it remembers between
/// calls.
struct Owner {
    connection: Connection,
    options: StoreOptions,
    /// Under [`Durability::PowerLoss`]: where durable answers wait for
    /// their WAL sync.
    syncs: Option<std::sync::mpsc::SyncSender<Vec<Answer>>>,
    wal: std::path::PathBuf,
    /// Asks the checkpointing thread for a checkpoint.
    checkpoints: std::sync::mpsc::SyncSender<()>,
    commits: u64,
    /// Wakes the workers of this store when an enqueue commits.
    enqueued: std::sync::Arc<watch::Sender<u64>>,
    counted: Counted,
    /// When each queue was last swept for expired leases.
    swept: HashMap<String, i64>,
}

/// What this store's last counts found, so that most bounded enqueues need
/// no count: finishing only lowers the unfinished jobs, and every bounded
/// enqueue (of any handle on the file) adds to `lanes_jobs_added`, so the
/// unfinished jobs are at most those counted plus those added since.
/// Counting, which reads every unfinished job, is left for when that sum
/// reaches a bound.
#[derive(Clone, Debug, Default)]
struct Counted {
    /// The store's unfinished jobs, and the jobs added to all queues, then.
    store: Option<(i64, i64)>,
    /// A bounded queue's unfinished jobs, and the jobs added to it, then.
    queues: HashMap<String, (i64, i64)>,
}

impl Owner {
    fn open(
        path: &std::path::Path,
        options: StoreOptions,
        enqueued: std::sync::Arc<watch::Sender<u64>>,
    ) -> Result<Owner, StoreError> {
        let connection = Connection::open(path).map_err(database)?;
        // WAL: readers never wait for the writer, and a commit is one
        // append to the WAL file. NORMAL: a commit is durable across a
        // process kill without a disk sync. The busy timeout serves other
        // handles on the same file (another process).
        let mode: String = connection
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(database)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Database(format!(
                "SQLite kept the journal mode `{mode}` for {}: the job store needs WAL \
                 (a local file system, not a network one)",
                path.display()
            )));
        }
        // Checkpoints (copying the WAL into the database, with two disk
        // syncs) are made by a thread of their own: made here, at every
        // 1,000 pages as SQLite does by default, they took most of a
        // commit's time.
        connection
            .execute_batch(
                "PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000; \
                 PRAGMA wal_autocheckpoint = 0;",
            )
            .map_err(database)?;
        for statement in super::TABLES {
            connection.execute_batch(statement).map_err(database)?;
        }
        for (column, definition) in super::ADDED_COLUMNS {
            let missing = connection
                .query_row(
                    "SELECT COUNT(*) = 0 FROM pragma_table_info('lanes_jobs') WHERE name = ?1",
                    [column],
                    |row| row.get::<_, bool>(0),
                )
                .map_err(database)?;
            if missing {
                connection
                    .execute_batch(&format!(
                        "ALTER TABLE lanes_jobs ADD COLUMN {column} {definition}"
                    ))
                    .map_err(database)?;
            }
        }
        let indexes = super::INDEXES.into_iter().chain([DROP_UNFINISHED_INDEX]);
        for statement in indexes.map(str::to_owned).chain(super::page_indexes("id")) {
            connection.execute_batch(&statement).map_err(database)?;
        }
        connection.set_prepared_statement_cache_capacity(64);
        // Plans that never read bound values: without this, SQLite plans a
        // bound `LIMIT` as the number it was prepared with and prepares the
        // claim again each time the limit is bound, which took a quarter
        // of this thread's time under load. Every plan here stands on
        // literals and indexes alone.
        connection
            .set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .map_err(database)?;
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        let wal = std::path::PathBuf::from(wal);
        let syncs = match options.durability {
            Durability::PowerLoss => Some(start_syncing(&wal)?),
            Durability::ProcessCrash => None,
        };
        Ok(Owner {
            connection,
            options,
            syncs,
            wal,
            checkpoints: start_checkpointing(path)?,
            commits: 0,
            enqueued,
            counted: Counted::default(),
            swept: HashMap::new(),
        })
    }

    /// Serves calls until every store handle is dropped.
    fn serve(mut self, mut waiting: mpsc::Receiver<Request>) {
        let mut batch = Vec::with_capacity(MOST);
        while let Some(first) = waiting.blocking_recv() {
            batch.push(first);
            while batch.len() < MOST {
                match waiting.try_recv() {
                    Ok(request) => batch.push(request),
                    Err(_) => break,
                }
            }
            self.run(&mut batch);
        }
    }

    /// One transaction for `batch`, answered once it commits (the durable
    /// calls once it is synced too).
    fn run(&mut self, batch: &mut Vec<Request>) {
        let before = self.counted.clone();
        let mut answers = Vec::with_capacity(batch.len());
        let mut wakes = false;
        let committed = match self.execute("BEGIN IMMEDIATE") {
            Err(error) => {
                for request in batch.drain(..) {
                    answers.push((Write::Worker, (request.call)(Err(error.clone())).answer));
                }
                Err(error)
            }
            Ok(()) => {
                for request in batch.drain(..) {
                    wakes |= request.write == Write::Enqueue;
                    answers.push((request.write, self.in_savepoint(request.call)));
                }
                let committed = self.execute("COMMIT");
                match &committed {
                    Ok(()) => self.committed(),
                    Err(_) => {
                        // What the batch counted is undone with it.
                        self.counted = before;
                        let _ = self.execute("ROLLBACK");
                    }
                }
                committed
            }
        };
        if wakes && committed.is_ok() {
            self.enqueued.send_modify(|count| *count += 1);
        }
        let mut to_sync = Vec::new();
        for (write, answer) in answers {
            if write != Write::Worker && committed.is_ok() && self.syncs.is_some() {
                to_sync.push(answer);
            } else {
                answer(committed.clone());
            }
        }
        if let (false, Some(syncs)) = (to_sync.is_empty(), &self.syncs)
            && let Err(unsent) = syncs.send(to_sync)
        {
            for answer in unsent.0 {
                answer(Err(StoreError::Database(
                    "the SQLite job store's syncing thread stopped (it panicked)".to_owned(),
                )));
            }
        }
    }

    /// Asks for a checkpoint every [`CHECKPOINT_EVERY`] commits, and makes
    /// one here when the WAL has grown past [`WAL_MOST`].
    fn committed(&mut self) {
        self.commits += 1;
        if !self.commits.is_multiple_of(CHECKPOINT_EVERY) {
            return;
        }
        // Full: one is under way or waiting, which will do.
        let _ = self.checkpoints.try_send(());
        let grown = std::fs::metadata(&self.wal).is_ok_and(|wal| wal.len() > WAL_MOST);
        if grown
            && let Err(error) =
                self.connection
                    .query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
        {
            tracing::warn!(%error, wal = %self.wal.display(), "lanes: the SQLite job store could not checkpoint its WAL; it goes on growing");
        }
    }

    /// Runs `call` in a savepoint, undone (with what it counted) if the
    /// call failed; its answer.
    fn in_savepoint(&mut self, call: Call) -> Answer {
        if let Err(error) = self.execute("SAVEPOINT call") {
            return (call)(Err(error)).answer;
        }
        let counted = self.counted.clone();
        let ran = (call)(Ok(self));
        if !ran.succeeded {
            self.counted = counted;
            let _ = self.execute("ROLLBACK TO call");
        }
        let _ = self.execute("RELEASE call");
        ran.answer
    }

    /// A statement without parameters or rows, prepared once.
    fn execute(&self, sql: &str) -> Result<(), StoreError> {
        self.connection
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute([]))
            .map(drop)
            .map_err(database)
    }

    /// Executes `sql`; whether it changed one row.
    fn changed(&self, sql: &str, values: impl rusqlite::Params) -> Result<bool, StoreError> {
        self.connection
            .prepare_cached(sql)
            .and_then(|mut statement| statement.execute(values))
            .map(|rows| rows == 1)
            .map_err(database)
    }

    fn count(&self, sql: &str, values: impl rusqlite::Params) -> Result<u64, StoreError> {
        self.connection
            .prepare_cached(sql)
            .and_then(|mut statement| statement.query_row(values, |row| row.get::<_, i64>(0)))
            .map(|n| u64::try_from(n).unwrap_or(0))
            .map_err(database)
    }

    fn count_unfinished(&self) -> Result<u64, StoreError> {
        self.count(
            "SELECT (SELECT COUNT(*) FROM lanes_jobs WHERE state IN ('queued', 'failed')) \
             + (SELECT COUNT(*) FROM lanes_jobs WHERE state = 'running')",
            [],
        )
    }

    fn enqueue(&mut self, job: NewJob) -> Result<JobId, StoreError> {
        if let Some(key) = &job.idempotency_key {
            let stored: Option<String> = self
                .connection
                .prepare_cached("SELECT id FROM lanes_jobs WHERE idempotency_key = ?1")
                .and_then(|mut statement| statement.query_row([key], |row| row.get(0)).optional())
                .map_err(database)?;
            if let Some(id) = stored {
                return parse_id(&id);
            }
        }
        if let Some(refused) = self.refusal(&job.queue)? {
            return Err(refused);
        }
        let (id, now) = (JobId::random(), millis::now());
        self.connection
            .prepare_cached(
                "INSERT INTO lanes_jobs (id, kind, queue, state, payload, attempts, max_attempts, \
                 timeout_ms, run_at, progress, cancel_requested, idempotency_key, created_at, \
                 updated_at, priority) \
                 VALUES (?1, ?2, ?3, 'queued', ?4, 0, ?5, ?6, ?7, 0, 0, ?8, ?9, ?9, ?10)",
            )
            .and_then(|mut statement| {
                statement.execute(params![
                    id.to_string(),
                    job.kind,
                    job.queue,
                    job.payload.to_string(),
                    i64::from(job.max_attempts.max(1)),
                    millis_of(job.timeout),
                    job.run_at.map_or(now, millis::from),
                    job.idempotency_key,
                    now,
                    job.priority,
                ])
            })
            .map_err(database)?;
        Ok(id)
    }

    /// The bound that refuses one more job in `queue`, if any; else the
    /// job is counted as added (in `lanes_jobs_added` and in `counted`).
    fn refusal(&mut self, queue: &str) -> Result<Option<StoreError>, StoreError> {
        let bounds_store = self.options.max_unfinished.is_some();
        let queue_limit = self.options.queue_max_unfinished.get(queue).copied();
        if !bounds_store && queue_limit.is_none() {
            return Ok(None);
        }
        let mut added: HashMap<String, i64> = HashMap::new();
        {
            let mut statement = self
                .connection
                .prepare_cached("SELECT queue, jobs FROM lanes_jobs_added")
                .map_err(database)?;
            let rows = statement
                .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(database)?;
            for row in rows {
                let (queue, jobs) = row.map_err(database)?;
                added.insert(queue, jobs);
            }
        }
        let added_to_all: i64 = added.values().sum();
        let added_to_queue = added.get(queue).copied().unwrap_or(0);
        // At most the last count plus what was added since; counted again
        // when that reaches the bound.
        let at_most = |last: Option<(i64, i64)>, added_now: i64, limit: u64| {
            last.map(|(unfinished, added_then)| unfinished + added_now - added_then)
                .filter(|at_most| *at_most < i64::try_from(limit).unwrap_or(i64::MAX))
        };
        let mut in_store = 0;
        if let Some(limit) = self.options.max_unfinished {
            in_store = match at_most(self.counted.store, added_to_all, limit) {
                Some(at_most) => at_most,
                None => i64::try_from(self.count_unfinished()?).unwrap_or(i64::MAX),
            };
        }
        let mut in_queue = 0;
        if let Some(limit) = queue_limit {
            in_queue = match at_most(
                self.counted.queues.get(queue).copied(),
                added_to_queue,
                limit,
            ) {
                Some(at_most) => at_most,
                None => i64::try_from(self.count(
                    "SELECT (SELECT COUNT(*) FROM lanes_jobs WHERE queue = ?1 \
                     AND state IN ('queued', 'failed')) + (SELECT COUNT(*) FROM lanes_jobs \
                     WHERE queue = ?1 AND state = 'running')",
                    [queue],
                )?)
                .unwrap_or(i64::MAX),
            };
        }
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        if let Some(refused) = self
            .options
            .refusal(queue, count(in_store), count(in_queue))
        {
            return Ok(Some(refused));
        }
        self.changed(
            "INSERT INTO lanes_jobs_added (queue, jobs) VALUES (?1, 1) \
             ON CONFLICT (queue) DO UPDATE SET jobs = jobs + 1",
            [queue],
        )?;
        if bounds_store {
            self.counted.store = Some((in_store + 1, added_to_all + 1));
        }
        if queue_limit.is_some() {
            self.counted
                .queues
                .insert(queue.to_owned(), (in_queue + 1, added_to_queue + 1));
        }
        Ok(None)
    }

    fn claim(&mut self, next: &NextClaim) -> Result<Vec<Claimed>, StoreError> {
        let now = millis::now();
        // Expired leases are looked for at most every `SWEEP_EVERY` ms per
        // queue: two statements a claim saved, for a delay far below any
        // lease.
        let last = self.swept.entry(next.queue.clone()).or_insert(i64::MIN);
        let sweep = now.saturating_sub(*last) >= SWEEP_EVERY;
        if sweep {
            *last = now;
            self.changed(
                "UPDATE lanes_jobs SET state = 'dead', error = ?1, worker = NULL, \
                 lease_until = NULL, finished_at = ?2, updated_at = ?2 \
                 WHERE queue = ?3 AND state = 'running' AND lease_until <= ?2 \
                 AND attempts >= max_attempts",
                params![super::LEASE_LOST, now, next.queue],
            )?;
        }
        // Jobs whose worker's lease ran out first (they have waited
        // longest), then due ones.
        let mut claimed = Vec::new();
        let statements: &[&str] = if sweep {
            &[CLAIM_EXPIRED, CLAIM_READY]
        } else {
            &[CLAIM_READY]
        };
        for statement in statements {
            let left = next.limit - claimed.len();
            if left == 0 {
                break;
            }
            let mut statement = self
                .connection
                .prepare_cached(statement)
                .map_err(database)?;
            let rows = statement
                .query_map(
                    params![
                        next.worker,
                        now + millis_of(next.lease),
                        now,
                        next.queue,
                        i64::try_from(left).unwrap_or(i64::MAX)
                    ],
                    read_claimed,
                )
                .map_err(database)?;
            for row in rows {
                claimed.push(row.map_err(database)??);
            }
        }
        Ok(claimed)
    }

    /// The state of the job `id`, if there is one.
    fn state_of(&self, id: &str) -> Result<Option<JobState>, StoreError> {
        let state: Option<String> = self
            .connection
            .prepare_cached("SELECT state FROM lanes_jobs WHERE id = ?1")
            .and_then(|mut statement| statement.query_row([id], |row| row.get(0)).optional())
            .map_err(database)?;
        state.as_deref().map(JobState::parse).transpose()
    }

    fn retry(&mut self, id: JobId) -> Result<Option<Retried>, StoreError> {
        let id = id.to_string();
        let found: Option<(String, String)> = self
            .connection
            .prepare_cached("SELECT state, queue FROM lanes_jobs WHERE id = ?1")
            .and_then(|mut statement| {
                statement
                    .query_row([&id], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
            })
            .map_err(database)?;
        let Some((state, queue)) = found else {
            return Ok(None);
        };
        match JobState::parse(&state)? {
            JobState::Dead => {
                // Unfinished again: counted against the bounds as an
                // enqueue is, and added to `lanes_jobs_added`.
                if let Some(refused) = self.refusal(&queue)? {
                    return Err(refused);
                }
            }
            JobState::Failed => {}
            state => return Ok(Some(Retried::Refused(state))),
        }
        self.changed(super::RETRY, params![millis::now(), id])?;
        Ok(Some(Retried::Queued))
    }

    fn finish(&mut self, id: JobId, worker: &str, how: Finish) -> Result<bool, StoreError> {
        let now = millis::now();
        let row = how.row(now);
        self.changed(
            "UPDATE lanes_jobs SET state = ?1, error = COALESCE(?2, error), result = ?3, \
             run_at = COALESCE(?4, run_at), finished_at = ?5, worker = NULL, lease_until = NULL, \
             updated_at = ?6 WHERE id = ?7 AND worker = ?8 AND state = 'running'",
            params![
                row.state.as_str(),
                row.error,
                row.result,
                row.run_at,
                row.finished_at,
                now,
                id.to_string(),
                worker
            ],
        )
    }
}

/// Starts the thread that syncs the WAL file `wal` and then answers the
/// calls committed before the sync began: whatever batches are waiting
/// when it starts one sync.
fn start_syncing(
    wal: &std::path::Path,
) -> Result<std::sync::mpsc::SyncSender<Vec<Answer>>, StoreError> {
    // Switching to WAL made the file; the owner's connection keeps it
    // (SQLite removes it only when the last connection closes).
    let wal = std::fs::File::open(wal).map_err(|e| {
        StoreError::Database(format!(
            "could not open the WAL file {}: {e}",
            wal.display()
        ))
    })?;
    let (syncs, waiting) = std::sync::mpsc::sync_channel::<Vec<Answer>>(SYNCS_WAITING);
    std::thread::Builder::new()
        .name("lanes-sqlite-sync".to_owned())
        .spawn(move || {
            while let Ok(mut answers) = waiting.recv() {
                while let Ok(more) = waiting.try_recv() {
                    answers.extend(more);
                }
                let synced = wal.sync_data().map_err(|e| {
                    StoreError::Database(format!(
                        "the write was committed, but the disk did not confirm it (fdatasync: {e})"
                    ))
                });
                for answer in answers {
                    answer(synced.clone());
                }
            }
        })
        .map_err(|e| StoreError::Database(format!("could not start its syncing thread: {e}")))?;
    Ok(syncs)
}

/// Starts the thread that checkpoints the database at `path` when asked,
/// on a connection of its own. Its checkpoints are passive: they copy what
/// the WAL holds into the database while the owner thread goes on writing.
/// It ends with the owner thread.
fn start_checkpointing(
    path: &std::path::Path,
) -> Result<std::sync::mpsc::SyncSender<()>, StoreError> {
    let connection = Connection::open(path).map_err(database)?;
    connection
        .execute_batch("PRAGMA busy_timeout = 5000;")
        .map_err(database)?;
    let (checkpoints, asked) = std::sync::mpsc::sync_channel::<()>(1);
    std::thread::Builder::new()
        .name("lanes-sqlite-checkpoint".to_owned())
        .spawn(move || {
            while asked.recv().is_ok() {
                if let Err(error) =
                    connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                {
                    tracing::debug!(%error, "lanes: a checkpoint of the SQLite job store failed; the next one retries");
                }
            }
        })
        .map_err(|e| StoreError::Database(format!("could not start its checkpointing thread: {e}")))?;
    Ok(checkpoints)
}

fn millis_of(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2)
}

fn parse_id(text: &str) -> Result<JobId, StoreError> {
    text.parse()
        .map_err(|e| StoreError::Corrupt(format!("a job id: {e}")))
}

fn count_of(row: &Row, column: usize) -> rusqlite::Result<Result<u32, StoreError>> {
    let value: i64 = row.get(column)?;
    Ok(u32::try_from(value)
        .map_err(|_| StoreError::Corrupt(format!("a count is out of range: {value}"))))
}

fn time_of(row: &Row, column: usize) -> rusqlite::Result<SystemTime> {
    row.get(column).map(super::from_millis)
}

/// A claimed job from a row a claim returns; the inner error is a
/// row that cannot be read as one.
fn read_claimed(row: &Row) -> rusqlite::Result<Result<Claimed, StoreError>> {
    let id: String = row.get(0)?;
    let payload: String = row.get(3)?;
    let (attempt, max_attempts, timeout) =
        (count_of(row, 4)?, count_of(row, 5)?, count_of(row, 6)?);
    let (kind, queue, due_at) = (row.get(1)?, row.get(2)?, time_of(row, 7)?);
    Ok((|| {
        Ok(Claimed {
            id: parse_id(&id)?,
            kind,
            queue,
            payload: serde_json::from_str(&payload)
                .map_err(|e| StoreError::Corrupt(format!("a payload is not JSON: {e}")))?,
            attempt: attempt?,
            max_attempts: max_attempts?,
            timeout: Duration::from_millis(timeout?.into()),
            due_at,
        })
    })())
}

/// A job's status from a row of [`JOB_COLUMNS`].
fn read_job(row: &Row) -> rusqlite::Result<Result<Job, StoreError>> {
    let (id, state, result): (String, String, Option<String>) =
        (row.get(0)?, row.get(3)?, row.get(9)?);
    let (attempts, max_attempts, progress) =
        (count_of(row, 4)?, count_of(row, 5)?, count_of(row, 6)?);
    let cancel_requested = row.get::<_, i64>(10)? != 0;
    let (finished_at, priority): (Option<i64>, i64) = (row.get(14)?, row.get(15)?);
    let (kind, queue, message, error) = (row.get(1)?, row.get(2)?, row.get(7)?, row.get(8)?);
    let (created_at, updated_at, run_at) =
        (time_of(row, 11)?, time_of(row, 12)?, time_of(row, 13)?);
    Ok((|| {
        Ok(Job {
            id: parse_id(&id)?,
            kind,
            queue,
            state: JobState::parse(&state)?,
            attempts: attempts?,
            max_attempts: max_attempts?,
            progress: u8::try_from(progress?).unwrap_or(100),
            message,
            error,
            result: result
                .map(|text| serde_json::from_str(&text))
                .transpose()
                .map_err(|e| StoreError::Corrupt(format!("a result is not JSON: {e}")))?,
            cancel_requested,
            created_at,
            updated_at,
            run_at,
            finished_at: finished_at.map(super::from_millis),
            priority: i16::try_from(priority).map_err(|_| {
                StoreError::Corrupt(format!("a priority is out of range: {priority}"))
            })?,
        })
    })())
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::super::DEFAULT_QUEUE;
    use super::*;

    /// A claim whose limit changes from call to call runs the statement
    /// prepared at the first: preparing it anew took a quarter of the
    /// owner thread's time under load.
    #[test]
    fn claims_reuse_their_prepared_statement() {
        let dir = std::env::temp_dir().join(format!("lanes_claims_{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("jobs.db");
        let enqueued = std::sync::Arc::new(watch::Sender::new(0));
        let mut owner = Owner::open(&path, StoreOptions::new(), enqueued).unwrap();
        for _ in 0..6 {
            owner
                .enqueue(NewJob::new("trivial", serde_json::Value::Null))
                .unwrap();
        }
        let mut claimed = 0;
        for limit in [1, 2, 3] {
            let next = NextClaim::new(DEFAULT_QUEUE, "worker", Duration::from_secs(30), limit);
            claimed += owner.claim(&next).unwrap().len();
        }
        assert_eq!(claimed, 6);
        for statement in [CLAIM_EXPIRED, CLAIM_READY] {
            let prepared = owner.connection.prepare_cached(statement).unwrap();
            assert_eq!(
                prepared.get_status(StatementStatus::RePrepare),
                0,
                "prepared again: {statement}"
            );
        }
        drop(owner);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
