//! The PostgreSQL store, through sqlx: claims use `FOR UPDATE SKIP LOCKED`,
//! enqueues `NOTIFY` the workers of every instance. Enqueues and finishes
//! made at the same time are written together, one statement and one
//! commit a batch (`batch.rs`); claims take up to a worker's free slots at
//! once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sqlx::postgres::{PgPoolOptions, PgRow};
use sqlx::{AssertSqlSafe, PgPool, Row};
use tokio::sync::{OnceCell, watch};

use super::batch::{Batcher, GroupWrite};
use super::query::{COUNTS, PageValue, page_statement};
use super::{
    Claimed, Durability, Finish, JOB_COLUMNS, Job, JobId, JobPage, JobQuery, JobState, Lease,
    NewJob, NextClaim, QueueCounts, Retried, StoreError, StoreOptions, millis,
};

#[derive(Clone, Debug)]
pub(super) struct PostgresStore {
    db: Database,
    options: Arc<StoreOptions>,
    /// Enqueues and finishes, each kind gathered into one statement.
    inserts: Arc<Batcher<Insert>>,
    endings: Arc<Batcher<Ending>>,
    enqueued: Arc<watch::Sender<u64>>,
    listening: Arc<OnceCell<()>>,
    /// When each queue was last swept for expired leases.
    swept: Arc<Mutex<HashMap<String, i64>>>,
}

/// The connections and the dialect: what the batch writers need.
#[derive(Clone, Debug)]
struct Database {
    pool: PgPool,
    /// What workers write: claims, renewals, progress and finishes. Losing
    /// the last of these in a crash only runs a job again once its lease
    /// ends (delivery is at least once), so on PostgreSQL they commit
    /// without waiting for the WAL flush; enqueues and cancels do wait.
    worker_pool: PgPool,
    /// The URL and channel the wakeup listener uses.
    notify: (String, String),
    /// `BEGIN`, then the lock under which bounded enqueues count, sent as
    /// one round trip (see [`begin_bounded`]).
    begin_bounded: String,
}

const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// Beside the tables and indexes both SQL stores keep: the unfinished jobs
/// in one index, for the bound's count.
const UNFINISHED_INDEX: &str = "CREATE INDEX IF NOT EXISTS lanes_jobs_unfinished ON lanes_jobs \
     (state) WHERE state IN ('queued', 'running', 'failed')";

/// How ids sort in pages of jobs: by bytes, as [`JobId`]s do, whatever the
/// database's collation.
const ID_SORTED: &str = "id COLLATE \"C\"";

fn database(error: sqlx::Error) -> StoreError {
    StoreError::Database(error.to_string())
}

fn millis_of(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX / 2)
}

impl PostgresStore {
    pub(super) async fn open(
        url: &str,
        schema: &str,
        options: StoreOptions,
    ) -> Result<PostgresStore, StoreError> {
        if schema.is_empty()
            || !schema
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(StoreError::Database(format!(
                "the schema name `{schema}` must be lowercase letters, digits and `_`"
            )));
        }
        let setup = PgPoolOptions::new()
            .max_connections(1)
            .connect(url)
            .await
            .map_err(database)?;
        // The name was checked above: letters, digits and `_` only.
        sqlx::query(AssertSqlSafe(format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}"
        )))
        .execute(&setup)
        .await
        .map_err(database)?;
        setup.close().await;
        let connect = |connections: u32, settings: String| {
            PgPoolOptions::new()
                .max_connections(connections)
                .after_connect(move |connection, _| {
                    let settings = settings.clone();
                    Box::pin(async move {
                        sqlx::raw_sql(AssertSqlSafe(settings))
                            .execute(connection)
                            .await
                            .map(drop)
                    })
                })
                .connect(url)
        };
        // Generic plans: PostgreSQL would otherwise plan the batch
        // statements anew at each execution (their arrays make a custom
        // plan look cheaper), which cost more than running them.
        let session =
            format!("SET search_path TO {schema}; SET plan_cache_mode = force_generic_plan");
        let relaxed = format!("{session}; SET synchronous_commit = off");
        let enqueue_settings = match options.durability {
            Durability::PowerLoss => session,
            Durability::ProcessCrash => relaxed.clone(),
        };
        let pool = connect(16, enqueue_settings).await.map_err(database)?;
        let worker_pool = connect(8, relaxed).await.map_err(database)?;
        let channel = format!("lanes_jobs_{schema}");
        // The channel is the schema's: one lock per store.
        let begin_bounded = format!(
            "BEGIN; SELECT pg_advisory_xact_lock(hashtext('{}'))",
            channel.replace('\'', "''")
        );
        let db = Database {
            pool,
            worker_pool,
            notify: (url.to_owned(), channel),
            begin_bounded,
        };
        PostgresStore::ready(db, options).await
    }

    async fn ready(db: Database, options: StoreOptions) -> Result<PostgresStore, StoreError> {
        let added_columns = super::ADDED_COLUMNS.map(|(column, definition)| {
            format!("ALTER TABLE lanes_jobs ADD COLUMN IF NOT EXISTS {column} {definition}")
        });
        let statements = super::TABLES
            .into_iter()
            .map(str::to_owned)
            .chain(added_columns)
            .chain(
                super::INDEXES
                    .into_iter()
                    .chain([UNFINISHED_INDEX])
                    .map(str::to_owned),
            )
            .chain(super::page_indexes(ID_SORTED));
        for statement in statements {
            sqlx::query(built(&statement))
                .execute(&db.pool)
                .await
                .map_err(database)?;
        }
        let options = Arc::new(options);
        Ok(PostgresStore {
            options: options.clone(),
            inserts: Arc::new(Batcher::new(Enqueues {
                db: db.clone(),
                options,
                counted: Arc::default(),
            })),
            endings: Arc::new(Batcher::new(db.clone())),
            db,
            enqueued: Arc::new(watch::Sender::new(0)),
            listening: Arc::new(OnceCell::new()),
            swept: Arc::default(),
        })
    }

    pub(super) async fn enqueue(&self, job: NewJob) -> Result<JobId, StoreError> {
        let insert = Insert {
            id: JobId::random(),
            job,
            now: millis::now(),
        };
        let id = self.inserts.write(insert).await??;
        self.enqueued.send_modify(|count| *count += 1);
        Ok(id)
    }

    pub(super) async fn claim(&self, next: NextClaim) -> Result<Vec<Claimed>, StoreError> {
        let NextClaim {
            queue,
            worker,
            lease,
            limit,
        } = &next;
        let (queue, lease, limit) = (queue.as_str(), *lease, *limit);
        let now = millis::now();
        // Expired leases are looked for at most every `SWEEP_EVERY` per
        // queue: two statements a claim saved, for a delay far below any
        // lease.
        let sweep = {
            let mut swept = self.swept.lock().unwrap_or_else(|e| e.into_inner());
            let last = swept.entry(queue.to_owned()).or_insert(i64::MIN);
            let due = now.saturating_sub(*last) >= millis_of(SWEEP_EVERY);
            if due {
                *last = now;
            }
            due
        };
        if sweep {
            sqlx::query("UPDATE lanes_jobs SET state = 'dead', error = $1, worker = NULL, lease_until = NULL, \
                 finished_at = $2, updated_at = $2 \
                 WHERE queue = $3 AND state = 'running' AND lease_until <= $2 AND attempts >= max_attempts")
            .bind(super::LEASE_LOST)
            .bind(now)
            .bind(queue)
            .execute(&self.db.worker_pool)
            .await
            .map_err(database)?;
        }
        // Jobs whose worker's lease ran out first (they have waited
        // longest), then due ones; each through its partial index. `run_at`
        // ends up as the time the job became due (SET reads the old row).
        let expired = (
            "state = 'running' AND lease_until <= $3 ORDER BY lease_until",
            ", run_at = lease_until",
        );
        let ready = (
            "state IN ('queued', 'failed') AND run_at <= $3 ORDER BY priority DESC, run_at",
            "",
        );
        let mut rows = Vec::new();
        let wheres = if sweep {
            vec![expired, ready]
        } else {
            vec![ready]
        };
        for (due, due_since) in wheres {
            let left = limit - rows.len();
            if left == 0 {
                break;
            }
            rows.extend(
                sqlx::query(built(&format!(
                    "UPDATE lanes_jobs SET state = 'running', attempts = attempts + 1, worker = $1, \
                     lease_until = $2, updated_at = $3{due_since} \
                     WHERE id IN (SELECT id FROM lanes_jobs WHERE queue = $4 AND {due} LIMIT $5 FOR UPDATE SKIP LOCKED) \
                     RETURNING id, kind, queue, payload, attempts, max_attempts, timeout_ms, run_at"
                )))
                .bind(worker)
                .bind(now + millis_of(lease))
                .bind(now)
                .bind(queue)
                .bind(i64::try_from(left).unwrap_or(i64::MAX))
                .fetch_all(&self.db.worker_pool)
                .await
                .map_err(database)?,
            );
        }
        rows.iter().map(claimed).collect()
    }

    pub(super) async fn renew(
        &self,
        id: JobId,
        worker: &str,
        lease: Duration,
    ) -> Result<Lease, StoreError> {
        let now = millis::now();
        let row = sqlx::query(
            "UPDATE lanes_jobs SET lease_until = $1, updated_at = $2 \
             WHERE id = $3 AND worker = $4 AND state = 'running' RETURNING cancel_requested",
        )
        .bind(now + millis_of(lease))
        .bind(now)
        .bind(id.to_string())
        .bind(worker)
        .fetch_optional(&self.db.worker_pool)
        .await
        .map_err(database)?;
        Ok(match row {
            None => Lease::Lost,
            Some(row) if get::<i64>(&row, "cancel_requested")? != 0 => Lease::CancelRequested,
            Some(_) => Lease::Held,
        })
    }

    pub(super) async fn progress(
        &self,
        id: JobId,
        worker: &str,
        percent: u8,
        message: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE lanes_jobs SET progress = $1, message = $2, updated_at = $3 \
             WHERE id = $4 AND worker = $5 AND state = 'running'",
        )
        .bind(i64::from(percent))
        .bind(message)
        .bind(millis::now())
        .bind(id.to_string())
        .bind(worker)
        .execute(&self.db.worker_pool)
        .await
        .map_err(database)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn finish(
        &self,
        id: JobId,
        worker: &str,
        how: Finish,
        next: Option<NextClaim>,
    ) -> Result<(bool, Vec<Claimed>), StoreError> {
        let ending = Ending {
            id,
            worker: worker.to_owned(),
            how,
            next,
        };
        self.endings.write(ending).await
    }

    pub(super) async fn release(&self, id: JobId, worker: &str) -> Result<bool, StoreError> {
        let now = millis::now();
        let done = sqlx::query(
            "UPDATE lanes_jobs SET state = 'queued', attempts = attempts - 1, worker = NULL, \
             lease_until = NULL, run_at = $1, updated_at = $1 \
             WHERE id = $2 AND worker = $3 AND state = 'running'",
        )
        .bind(now)
        .bind(id.to_string())
        .bind(worker)
        .execute(&self.db.worker_pool)
        .await
        .map_err(database)?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn waiting(&self, queue: &str) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS waiting FROM lanes_jobs WHERE queue = $1 AND state IN ('queued', 'failed')")
        .bind(queue)
        .fetch_one(&self.db.pool)
        .await
        .map_err(database)?;
        Ok(u64::try_from(get::<i64>(&row, "waiting")?).unwrap_or(0))
    }

    pub(super) async fn cancel(&self, id: JobId) -> Result<Option<JobState>, StoreError> {
        let now = millis::now();
        let id = id.to_string();
        sqlx::query(
            "UPDATE lanes_jobs SET state = 'cancelled', finished_at = $1, updated_at = $1 \
             WHERE id = $2 AND state IN ('queued', 'failed')",
        )
        .bind(now)
        .bind(&id)
        .execute(&self.db.pool)
        .await
        .map_err(database)?;
        sqlx::query("UPDATE lanes_jobs SET cancel_requested = 1, updated_at = $1 WHERE id = $2 AND state = 'running'")
        .bind(now)
        .bind(&id)
        .execute(&self.db.pool)
        .await
        .map_err(database)?;
        let state = self.state_of(&id).await?;
        if state == Some(JobState::Running) {
            let (_, channel) = &self.db.notify;
            // Its worker may run in another instance; one in this process
            // hears of it from the store handle (`cancels.rs`).
            sqlx::query("SELECT pg_notify($1, $2)::text AS notified")
                .bind(cancels_channel(channel))
                .bind(&id)
                .execute(&self.db.pool)
                .await
                .map_err(database)?;
        }
        Ok(state)
    }

    pub(super) async fn unfinished(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS unfinished FROM lanes_jobs WHERE state IN ('queued', 'running', 'failed')")
        .fetch_one(&self.db.pool)
        .await
        .map_err(database)?;
        Ok(u64::try_from(get::<i64>(&row, "unfinished")?).unwrap_or(0))
    }

    pub(super) async fn get(&self, id: JobId) -> Result<Option<Job>, StoreError> {
        let row = sqlx::query(built(&format!(
            "SELECT {JOB_COLUMNS} FROM lanes_jobs WHERE id = $1"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.db.pool)
        .await
        .map_err(database)?;
        row.map(|row| job(&row)).transpose()
    }

    pub(super) async fn list(&self, query: &JobQuery) -> Result<JobPage, StoreError> {
        let (sql, values) = page_statement(query, |n| format!("${n}"), ID_SORTED);
        let mut statement = sqlx::query(AssertSqlSafe(sql));
        for value in values {
            statement = match value {
                PageValue::Text(text) => statement.bind(text),
                PageValue::Integer(n) => statement.bind(n),
            };
        }
        let rows = statement.fetch_all(&self.db.pool).await.map_err(database)?;
        Ok(query.page(rows.iter().map(job).collect::<Result<_, _>>()?))
    }

    pub(super) async fn counts(&self) -> Result<Vec<QueueCounts>, StoreError> {
        let mut rows = Vec::new();
        for sql in COUNTS {
            for row in sqlx::query(sql)
                .fetch_all(&self.db.pool)
                .await
                .map_err(database)?
            {
                let (queue, state, jobs): (String, String, i64) = (
                    row.try_get(0).map_err(database)?,
                    row.try_get(1).map_err(database)?,
                    row.try_get(2).map_err(database)?,
                );
                rows.push((
                    queue,
                    JobState::parse(&state)?,
                    u64::try_from(jobs).unwrap_or(0),
                ));
            }
        }
        Ok(QueueCounts::from_rows(rows))
    }

    pub(super) async fn delete(&self, id: JobId) -> Result<Option<JobState>, StoreError> {
        let id = id.to_string();
        let deleted = sqlx::query(
            "DELETE FROM lanes_jobs WHERE id = $1 AND state IN ('succeeded', 'dead', 'cancelled') \
             RETURNING state",
        )
        .bind(&id)
        .fetch_optional(&self.db.pool)
        .await
        .map_err(database)?;
        match deleted {
            Some(row) => JobState::parse(&get::<String>(&row, "state")?).map(Some),
            // Unknown, or not ended: kept.
            None => self.state_of(&id).await,
        }
    }

    /// The state of the job `id`, if there is one.
    async fn state_of(&self, id: &str) -> Result<Option<JobState>, StoreError> {
        let row = sqlx::query("SELECT state FROM lanes_jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await
            .map_err(database)?;
        row.map(|row| JobState::parse(&get::<String>(&row, "state")?))
            .transpose()
    }

    /// In one transaction that holds the job's row; a dead job's is also
    /// counted against the bounds under the lock bounded enqueues take.
    pub(super) async fn retry(&self, id: JobId) -> Result<Option<Retried>, StoreError> {
        use sqlx::Connection as _;

        let id = id.to_string();
        let mut connection = self.db.pool.acquire().await.map_err(database)?;
        // Before the row's lock, in the order bounded enqueues take them.
        let bounded =
            self.options.max_unfinished.is_some() || !self.options.queue_max_unfinished.is_empty();
        let mut transaction = if bounded {
            begin_bounded(&self.db, &mut connection).await?
        } else {
            connection.begin().await.map_err(database)?
        };
        let Some(row) = sqlx::query("SELECT state, queue FROM lanes_jobs WHERE id = $1 FOR UPDATE")
            .bind(&id)
            .fetch_optional(&mut *transaction)
            .await
            .map_err(database)?
        else {
            return Ok(None);
        };
        let queue: String = get(&row, "queue")?;
        match JobState::parse(&get::<String>(&row, "state")?)? {
            JobState::Dead => {
                if bounded
                    && let Some(refused) =
                        refuse_revival(&self.options, &mut transaction, &queue).await?
                {
                    return Err(refused);
                }
            }
            JobState::Failed => {}
            state => return Ok(Some(Retried::Refused(state))),
        }
        sqlx::query(super::RETRY)
            .bind(millis::now())
            .bind(&id)
            .execute(&mut *transaction)
            .await
            .map_err(database)?;
        sqlx::query("SELECT pg_notify($1, $2)::text AS notified")
            .bind(&self.db.notify.1)
            .bind(&queue)
            .execute(&mut *transaction)
            .await
            .map_err(database)?;
        transaction.commit().await.map_err(database)?;
        self.enqueued.send_modify(|count| *count += 1);
        Ok(Some(Retried::Queued))
    }

    pub(super) async fn wakeups(&self) -> Result<watch::Receiver<u64>, StoreError> {
        let (url, channel) = &self.db.notify;
        self.listening
            .get_or_try_init(|| listen(url.clone(), channel.clone(), self.enqueued.clone()))
            .await?;
        Ok(self.enqueued.subscribe())
    }
}

/// A statement built in this module (its values are bound, never
/// formatted into it).
fn built(sql: &str) -> AssertSqlSafe<String> {
    AssertSqlSafe(sql.to_owned())
}

/// The ids in the `id` column of the rows `query` returns.
async fn returned_ids<'c>(
    query: sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments>,
    executor: impl sqlx::Executor<'c, Database = sqlx::Postgres>,
) -> Result<HashSet<JobId>, StoreError> {
    query
        .fetch_all(executor)
        .await
        .map_err(database)?
        .iter()
        .map(|row| job_id(row, "id"))
        .collect()
}

/// An enqueue, written with the others waiting.
#[derive(Debug)]
struct Insert {
    id: JobId,
    job: NewJob,
    now: i64,
}

/// What enqueues are written with: the database, the bounds they are
/// checked against, and (SQLite) what makes their commits durable.
#[derive(Clone, Debug)]
struct Enqueues {
    db: Database,
    options: Arc<StoreOptions>,
    counted: Arc<Mutex<Counted>>,
}

/// What this store's last counts found, so that most bounded enqueues need
/// no count: finishing only lowers the unfinished jobs, and every bounded
/// enqueue (of any instance) adds to `lanes_jobs_added`, so the unfinished
/// jobs are at most those counted plus those added since. Counting, which
/// reads every unfinished job, is left for when that sum nears a bound.
#[derive(Clone, Debug, Default)]
struct Counted {
    /// The store's unfinished jobs, and the jobs added to all queues, then.
    store: Option<(i64, i64)>,
    /// A bounded queue's unfinished jobs, and the jobs added to it, then.
    queues: HashMap<String, (i64, i64)>,
}

impl GroupWrite for Insert {
    /// The job's id, or the bound that refused it.
    type Done = Result<JobId, StoreError>;
    type Target = Enqueues;

    /// One multi-row `INSERT`: one round trip and one commit. It also
    /// notifies, in the same statement, and only for rows it added
    /// (PostgreSQL sends one of identical notifications in a transaction).
    ///
    /// When a bound applies, the count and the insert are one transaction
    /// that no other enqueue of the database interleaves with: a
    /// transaction-scoped advisory lock of the schema makes every
    /// instance's enqueues count in turn (a lock on the rows cannot: the
    /// jobs that would overflow the bound are not written yet).
    async fn write_all(
        target: &Enqueues,
        inserts: &[Insert],
    ) -> Result<Vec<Result<JobId, StoreError>>, StoreError> {
        let db = &target.db;
        let bounded = target.options.max_unfinished.is_some()
            || inserts
                .iter()
                .any(|insert| target.options.bounds_queue(&insert.job.queue));
        let mut connection = db.pool.acquire().await.map_err(database)?;
        write_batch(target, &mut connection, inserts, bounded).await
    }
}

/// The batch's enqueues on `connection`: checked against the bounds and
/// added in one transaction when `bounded`, else added at once.
async fn write_batch(
    target: &Enqueues,
    connection: &mut sqlx::PgConnection,
    inserts: &[Insert],
    bounded: bool,
) -> Result<Vec<Result<JobId, StoreError>>, StoreError> {
    let db = &target.db;
    if !bounded {
        let all: Vec<&Insert> = inserts.iter().collect();
        let ids = add(db, connection, &all, &Added::default()).await?;
        return Ok(ids.into_iter().map(Ok).collect());
    }
    let mut transaction = begin_bounded(db, connection).await?;
    let (admissions, counted, adding) = admit(target, &mut transaction, inserts).await?;
    let admitted: Vec<&Insert> = inserts
        .iter()
        .zip(&admissions)
        .filter(|(_, admission)| matches!(admission, Admission::Add))
        .map(|(insert, _)| insert)
        .collect();
    let mut added = add(db, &mut transaction, &admitted, &adding)
        .await?
        .into_iter();
    transaction.commit().await.map_err(database)?;
    // Only once committed: a batch rolled back leaves the last counts true.
    *target.counted.lock().unwrap_or_else(|e| e.into_inner()) = counted;
    Ok(admissions
        .into_iter()
        .map(|admission| match admission {
            Admission::Add => Ok(added.next().expect("an id for each admitted job")),
            Admission::Repeat(id) => Ok(id),
            Admission::Refused(error) => Err(error),
        })
        .collect())
}

/// What becomes of one enqueue of a batch under the bounds.
enum Admission {
    Add,
    /// Its idempotency key is a stored job's: that job's id, nothing added.
    Repeat(JobId),
    Refused(StoreError),
}

/// Decides each enqueue of the batch, in order, against the unfinished
/// jobs in `connection`'s transaction; returns the counts to keep once it
/// commits, and the jobs it admits, for [`add`] to record in
/// `lanes_jobs_added`.
async fn admit(
    target: &Enqueues,
    connection: &mut sqlx::PgConnection,
    inserts: &[Insert],
) -> Result<(Vec<Admission>, Counted, Added), StoreError> {
    let options = &target.options;
    let keys: Vec<&str> = inserts
        .iter()
        .filter_map(|insert| insert.job.idempotency_key.as_deref())
        .collect();
    let mut stored: HashMap<String, JobId> = HashMap::new();
    if !keys.is_empty() {
        let query = sqlx::query(
            "SELECT id, idempotency_key FROM lanes_jobs WHERE idempotency_key = ANY($1)",
        )
        .bind(&keys);
        for row in query.fetch_all(&mut *connection).await.map_err(database)? {
            stored.insert(get(&row, "idempotency_key")?, job_id(&row, "id")?);
        }
    }
    let mut added: HashMap<String, i64> = HashMap::new();
    for row in sqlx::query("SELECT queue, jobs FROM lanes_jobs_added")
        .fetch_all(&mut *connection)
        .await
        .map_err(database)?
    {
        added.insert(get(&row, "queue")?, get(&row, "jobs")?);
    }
    let added_to_all: i64 = added.values().sum();
    let batch = i64::try_from(inserts.len()).unwrap_or(i64::MAX);
    let mut counted = target
        .counted
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    // At most the last count plus what was added since; counted again when
    // that could pass the bound within this batch.
    let at_most = |last: Option<(i64, i64)>, added_now: i64, limit: u64| {
        last.map(|(unfinished, added_then)| unfinished + added_now - added_then)
            .filter(|at_most| {
                at_most.saturating_add(batch) <= i64::try_from(limit).unwrap_or(i64::MAX)
            })
    };
    let mut in_store = 0;
    if let Some(limit) = options.max_unfinished {
        in_store = match at_most(counted.store, added_to_all, limit) {
            Some(at_most) => at_most,
            None => unfinished(&mut *connection, None).await?,
        };
    }
    let mut in_queue: HashMap<&str, i64> = HashMap::new();
    for insert in inserts {
        let queue = insert.job.queue.as_str();
        let Some(limit) = options.queue_max_unfinished.get(queue).copied() else {
            continue;
        };
        if in_queue.contains_key(queue) {
            continue;
        }
        let added_now = added.get(queue).copied().unwrap_or(0);
        let unfinished = match at_most(counted.queues.get(queue).copied(), added_now, limit) {
            Some(at_most) => at_most,
            None => unfinished(&mut *connection, Some(queue)).await?,
        };
        in_queue.insert(queue, unfinished);
    }
    // A key used twice in the batch: the second is a repeat of the first,
    // answered with its id once it is added.
    let mut added_keys: HashSet<&str> = HashSet::new();
    let mut adding: HashMap<&str, i64> = HashMap::new();
    let mut admissions = Vec::with_capacity(inserts.len());
    for insert in inserts {
        let key = insert.job.idempotency_key.as_deref();
        if let Some(id) = key.and_then(|key| stored.get(key)) {
            admissions.push(Admission::Repeat(*id));
            continue;
        }
        if key.is_some_and(|key| added_keys.contains(key)) {
            admissions.push(Admission::Add);
            continue;
        }
        let queue = insert.job.queue.as_str();
        let queued = in_queue.get(queue).copied().unwrap_or(0);
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        if let Some(refused) = options.refusal(queue, count(in_store), count(queued)) {
            admissions.push(Admission::Refused(refused));
            continue;
        }
        in_store += 1;
        if let Some(count) = in_queue.get_mut(queue) {
            *count += 1;
        }
        *adding.entry(queue).or_default() += 1;
        added_keys.extend(key);
        admissions.push(Admission::Add);
    }
    let added_in_batch: i64 = adding.values().sum();
    if options.max_unfinished.is_some() {
        counted.store = Some((in_store, added_to_all + added_in_batch));
    }
    for (queue, unfinished) in in_queue {
        let added_after =
            added.get(queue).copied().unwrap_or(0) + adding.get(queue).copied().unwrap_or(0);
        counted
            .queues
            .insert(queue.to_owned(), (unfinished, added_after));
    }
    let (queues, jobs) = adding
        .iter()
        .map(|(queue, jobs)| ((*queue).to_owned(), *jobs))
        .unzip();
    Ok((admissions, counted, Added { queues, jobs }))
}

/// The unfinished jobs of the store, or of one queue.
async fn unfinished(
    connection: &mut sqlx::PgConnection,
    queue: Option<&str>,
) -> Result<i64, StoreError> {
    let row = match queue {
        None => sqlx::query(
            "SELECT COUNT(*) AS unfinished FROM lanes_jobs WHERE state IN ('queued', 'running', 'failed')",
        ),
        // Through the two partial indexes claims use, as one count.
        Some(queue) => sqlx::query(
            "SELECT (SELECT COUNT(*) FROM lanes_jobs WHERE queue = $1 AND state IN ('queued', 'failed')) \
             + (SELECT COUNT(*) FROM lanes_jobs WHERE queue = $1 AND state = 'running') AS unfinished",
        )
        .bind(queue),
    }
    .fetch_one(connection)
    .await
    .map_err(database)?;
    get(&row, "unfinished")
}

/// A transaction on `connection` that holds the lock under which bounded
/// enqueues count, until it ends. `BEGIN` and the lock go in one simple
/// query, one round trip; the lock is taken before any statement after it
/// reads, so each of those sees every count committed before it.
async fn begin_bounded<'c>(
    db: &Database,
    connection: &'c mut sqlx::PgConnection,
) -> Result<sqlx::Transaction<'c, sqlx::Postgres>, StoreError> {
    use sqlx::Connection as _;

    connection
        .begin_with(built(&db.begin_bounded))
        .await
        .map_err(database)
}

/// Whether the bounds refuse a dead job of `queue` coming back (a retry);
/// else it is counted in `lanes_jobs_added` as an enqueue is. The caller
/// holds the lock of [`begin_bounded`].
async fn refuse_revival(
    options: &StoreOptions,
    connection: &mut sqlx::PgConnection,
    queue: &str,
) -> Result<Option<StoreError>, StoreError> {
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let in_store = match options.max_unfinished {
        Some(_) => count(unfinished(&mut *connection, None).await?),
        None => 0,
    };
    let in_queue = match options.bounds_queue(queue) {
        true => count(unfinished(&mut *connection, Some(queue)).await?),
        false => 0,
    };
    if let Some(refused) = options.refusal(queue, in_store, in_queue) {
        return Ok(Some(refused));
    }
    sqlx::query(
        "INSERT INTO lanes_jobs_added (queue, jobs) VALUES ($1, 1) \
         ON CONFLICT (queue) DO UPDATE SET jobs = lanes_jobs_added.jobs + 1",
    )
    .bind(queue)
    .execute(connection)
    .await
    .map_err(database)?;
    Ok(None)
}

/// The jobs a bounded batch admits, by queue, added to `lanes_jobs_added`.
#[derive(Debug, Default)]
struct Added {
    queues: Vec<String>,
    jobs: Vec<i64>,
}

/// Adds `inserts`, and `added` to the counts of `lanes_jobs_added`, in one
/// statement on `connection`; a job whose idempotency key was taken is
/// answered with the first job's id.
async fn add(
    db: &Database,
    connection: &mut sqlx::PgConnection,
    inserts: &[&Insert],
    added: &Added,
) -> Result<Vec<JobId>, StoreError> {
    if inserts.is_empty() {
        return Ok(Vec::new());
    }
    // Arrays, one a column: one statement text whatever the batch's size,
    // so the connection's prepared statement serves every batch. Only the
    // rows added are notified; `pg_notify` returns `void`, read as text.
    let mut columns = InsertColumns::default();
    for Insert { id, job, now } in inserts.iter().copied() {
        columns.id.push(id.to_string());
        columns.kind.push(job.kind.clone());
        columns.queue.push(job.queue.clone());
        columns.payload.push(job.payload.to_string());
        columns
            .max_attempts
            .push(i64::from(job.max_attempts.max(1)));
        columns.timeout_ms.push(millis_of(job.timeout));
        columns.run_at.push(job.run_at.map_or(*now, millis::from));
        columns.key.push(job.idempotency_key.clone());
        columns.now.push(*now);
        columns.priority.push(i64::from(job.priority));
    }
    let query = sqlx::query(
        "WITH inserted AS (INSERT INTO lanes_jobs (id, kind, queue, state, payload, attempts, \
         max_attempts, timeout_ms, run_at, progress, cancel_requested, idempotency_key, \
         created_at, updated_at, priority) \
         SELECT id, kind, queue, 'queued', payload, 0, max_attempts, timeout_ms, run_at, 0, 0, \
         idempotency_key, now, now, priority \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::int8[], $6::int8[], \
         $7::int8[], $8::text[], $9::int8[], $11::int8[]) \
         AS j(id, kind, queue, payload, max_attempts, timeout_ms, run_at, idempotency_key, now, \
         priority) \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, queue), \
         counted AS (INSERT INTO lanes_jobs_added (queue, jobs) \
         SELECT * FROM UNNEST($12::text[], $13::int8[]) \
         ON CONFLICT (queue) DO UPDATE SET jobs = lanes_jobs_added.jobs + excluded.jobs) \
         SELECT id, pg_notify($10, queue)::text AS notified FROM inserted",
    )
    .bind(columns.id)
    .bind(columns.kind)
    .bind(columns.queue)
    .bind(columns.payload)
    .bind(columns.max_attempts)
    .bind(columns.timeout_ms)
    .bind(columns.run_at)
    .bind(columns.key)
    .bind(columns.now)
    .bind(&db.notify.1)
    .bind(columns.priority)
    .bind(&added.queues)
    .bind(&added.jobs);
    let added = returned_ids(query, &mut *connection).await?;
    let mut ids = Vec::with_capacity(inserts.len());
    for insert in inserts {
        if added.contains(&insert.id) {
            ids.push(insert.id);
            continue;
        }
        // Its idempotency key was taken: the first job's id.
        let row = sqlx::query("SELECT id FROM lanes_jobs WHERE idempotency_key = $1")
            .bind(&insert.job.idempotency_key)
            .fetch_one(&mut *connection)
            .await
            .map_err(database)?;
        ids.push(job_id(&row, "id")?);
    }
    Ok(ids)
}

/// A batch of enqueues, a column at a time, for `UNNEST`.
#[derive(Default)]
struct InsertColumns {
    id: Vec<String>,
    kind: Vec<String>,
    queue: Vec<String>,
    payload: Vec<String>,
    max_attempts: Vec<i64>,
    timeout_ms: Vec<i64>,
    run_at: Vec<i64>,
    key: Vec<Option<String>>,
    now: Vec<i64>,
    priority: Vec<i64>,
}

/// How a worker's attempt ended, and the claim its freed slot makes,
/// written with the others waiting.
#[derive(Debug)]
struct Ending {
    id: JobId,
    worker: String,
    how: Finish,
    next: Option<NextClaim>,
}

/// A batch's endings and the claims they make, in one statement: the
/// endings by `UNNEST`, then each queue's claims take its oldest due jobs
/// (`SKIP LOCKED`), the n-th claimant of a queue the n-th job. Both
/// `UPDATE`s read one snapshot and touch different rows (an ending's job
/// is running, a claimed one waiting). Claims here take waiting jobs
/// only; the claim loop's own claims take back expired leases.
const END_AND_CLAIM: &str = "\
    WITH ended AS ( \
        UPDATE lanes_jobs SET state = f.state, error = COALESCE(f.error, lanes_jobs.error), \
            result = f.result, run_at = COALESCE(f.run_at, lanes_jobs.run_at), \
            finished_at = f.finished_at, worker = NULL, lease_until = NULL, updated_at = $1 \
        FROM UNNEST($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int8[], \
            $8::int8[]) AS f(id, worker, state, error, result, run_at, finished_at) \
        WHERE lanes_jobs.id = f.id AND lanes_jobs.worker = f.worker \
            AND lanes_jobs.state = 'running' \
        RETURNING lanes_jobs.id), \
    wanted AS ( \
        SELECT worker, queue, lease_until, row_number() OVER (PARTITION BY queue) AS n \
        FROM UNNEST($9::text[], $10::text[], $11::int8[]) AS w(worker, queue, lease_until)), \
    due AS ( \
        SELECT picked.id, asked.queue, \
            row_number() OVER (PARTITION BY asked.queue \
                ORDER BY picked.priority DESC, picked.run_at) AS n \
        FROM (SELECT queue, count(*) AS jobs FROM wanted GROUP BY queue) AS asked \
        CROSS JOIN LATERAL ( \
            SELECT id, priority, run_at FROM lanes_jobs \
            WHERE queue = asked.queue AND state IN ('queued', 'failed') AND run_at <= $1 \
            ORDER BY priority DESC, run_at LIMIT asked.jobs FOR UPDATE SKIP LOCKED) AS picked), \
    claimed AS ( \
        UPDATE lanes_jobs SET state = 'running', attempts = attempts + 1, \
            worker = wanted.worker, lease_until = wanted.lease_until, updated_at = $1 \
        FROM due JOIN wanted USING (queue, n) \
        WHERE lanes_jobs.id = due.id \
        RETURNING lanes_jobs.id, lanes_jobs.worker, lanes_jobs.kind, lanes_jobs.queue, \
            lanes_jobs.payload, lanes_jobs.attempts, lanes_jobs.max_attempts, \
            lanes_jobs.timeout_ms, lanes_jobs.run_at) \
    SELECT id, NULL::text AS claimant, NULL::text AS kind, NULL::text AS queue, \
        NULL::text AS payload, NULL::int8 AS attempts, NULL::int8 AS max_attempts, \
        NULL::int8 AS timeout_ms, NULL::int8 AS run_at FROM ended \
    UNION ALL \
    SELECT id, worker, kind, queue, payload, attempts, max_attempts, timeout_ms, run_at \
    FROM claimed";

impl GroupWrite for Ending {
    /// Whether the worker still held the job (else nothing was recorded),
    /// and the jobs its claim took.
    type Done = (bool, Vec<Claimed>);
    type Target = Database;

    /// One statement, [`END_AND_CLAIM`], on the worker pool.
    async fn write_all(db: &Database, endings: &[Ending]) -> Result<Vec<Self::Done>, StoreError> {
        let now = millis::now();
        let mut columns = EndingColumns::default();
        for Ending {
            id,
            worker,
            how,
            next,
        } in endings
        {
            let row = how.row(now);
            columns.id.push(id.to_string());
            columns.worker.push(worker.as_str());
            columns.state.push(row.state.as_str());
            columns.error.push(row.error);
            columns.result.push(row.result);
            columns.run_at.push(row.run_at);
            columns.finished_at.push(row.finished_at);
            for next in next
                .iter()
                .flat_map(|next| std::iter::repeat_n(next, next.limit))
            {
                columns.claimant.push(next.worker.as_str());
                columns.claimed_queue.push(next.queue.as_str());
                columns.lease_until.push(now + millis_of(next.lease));
            }
        }
        let rows = sqlx::query(END_AND_CLAIM)
            .bind(now)
            .bind(columns.id)
            .bind(columns.worker)
            .bind(columns.state)
            .bind(columns.error)
            .bind(columns.result)
            .bind(columns.run_at)
            .bind(columns.finished_at)
            .bind(columns.claimant)
            .bind(columns.claimed_queue)
            .bind(columns.lease_until)
            .fetch_all(&db.worker_pool)
            .await
            .map_err(database)?;
        let mut recorded = HashSet::new();
        let mut claims: HashMap<String, Vec<Claimed>> = HashMap::new();
        for row in &rows {
            match get::<Option<String>>(row, "claimant")? {
                None => {
                    recorded.insert(job_id(row, "id")?);
                }
                Some(claimant) => claims.entry(claimant).or_default().push(claimed(row)?),
            }
        }
        Ok(endings
            .iter()
            .map(|ending| {
                let claimed = ending
                    .next
                    .as_ref()
                    .and_then(|next| claims.remove(&next.worker))
                    .unwrap_or_default();
                (recorded.contains(&ending.id), claimed)
            })
            .collect())
    }
}

/// A batch of endings and their claims, a column at a time, for `UNNEST`.
#[derive(Default)]
struct EndingColumns<'a> {
    id: Vec<String>,
    worker: Vec<&'a str>,
    state: Vec<&'static str>,
    error: Vec<Option<String>>,
    result: Vec<Option<String>>,
    run_at: Vec<Option<i64>>,
    finished_at: Vec<Option<i64>>,
    /// A row for each job a claim may take.
    claimant: Vec<&'a str>,
    claimed_queue: Vec<&'a str>,
    lease_until: Vec<i64>,
}

/// The channel cancellation requests of a store are notified on, beside
/// its enqueues' `channel`.
fn cancels_channel(channel: &str) -> String {
    format!("{channel}_cancels")
}

/// Forwards every `NOTIFY` on `channel` (an enqueue by any instance) to
/// `enqueued`, and every cancellation request to the attempt running it in
/// this process, if any; reconnects when the connection drops.
#[cfg(feature = "postgres")]
async fn listen(
    url: String,
    channel: String,
    enqueued: Arc<watch::Sender<u64>>,
) -> Result<(), StoreError> {
    let mut listener = sqlx::postgres::PgListener::connect(&url)
        .await
        .map_err(database)?;
    let cancels = cancels_channel(&channel);
    listener
        .listen_all([channel.as_str(), cancels.as_str()])
        .await
        .map_err(database)?;
    tokio::spawn(async move {
        loop {
            match listener.try_recv().await {
                Ok(Some(notification)) if notification.channel() == cancels => {
                    if let Ok(id) = notification.payload().parse() {
                        super::cancels::request(id);
                    }
                }
                Ok(Some(_)) => enqueued.send_modify(|count| *count += 1),
                // The connection dropped; the listener reconnects on the
                // next call. Wake the workers: they may have missed jobs.
                Ok(None) => enqueued.send_modify(|count| *count += 1),
                Err(error) => {
                    tracing::warn!(%error, "lanes: the job store's LISTEN connection failed; retrying in 1 s");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    });
    Ok(())
}

#[cfg(not(feature = "postgres"))]
async fn listen(_: String, _: String, _: Arc<watch::Sender<u64>>) -> Result<(), StoreError> {
    Ok(())
}

fn get<T>(row: &PgRow, column: &str) -> Result<T, StoreError>
where
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column)
        .map_err(|e| StoreError::Corrupt(format!("column `{column}`: {e}")))
}

fn count(row: &PgRow, column: &str) -> Result<u32, StoreError> {
    u32::try_from(get::<i64>(row, column)?)
        .map_err(|_| StoreError::Corrupt(format!("column `{column}` is out of range")))
}

fn job_id(row: &PgRow, column: &str) -> Result<JobId, StoreError> {
    get::<String>(row, column)?
        .parse()
        .map_err(|e| StoreError::Corrupt(format!("a job id: {e}")))
}

fn time(row: &PgRow, column: &str) -> Result<SystemTime, StoreError> {
    get::<i64>(row, column).map(super::from_millis)
}

/// A claimed job from a row with its columns.
fn claimed(row: &PgRow) -> Result<Claimed, StoreError> {
    let payload: String = get(row, "payload")?;
    Ok(Claimed {
        id: job_id(row, "id")?,
        kind: get(row, "kind")?,
        queue: get(row, "queue")?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| StoreError::Corrupt(format!("a payload is not JSON: {e}")))?,
        attempt: count(row, "attempts")?,
        max_attempts: count(row, "max_attempts")?,
        timeout: Duration::from_millis(count(row, "timeout_ms")?.into()),
        due_at: time(row, "run_at")?,
    })
}

fn job(row: &PgRow) -> Result<Job, StoreError> {
    let result: Option<String> = get(row, "result")?;
    Ok(Job {
        id: job_id(row, "id")?,
        kind: get(row, "kind")?,
        queue: get(row, "queue")?,
        state: JobState::parse(&get::<String>(row, "state")?)?,
        attempts: count(row, "attempts")?,
        max_attempts: count(row, "max_attempts")?,
        progress: u8::try_from(count(row, "progress")?).unwrap_or(100),
        message: get(row, "message")?,
        error: get(row, "error")?,
        result: result
            .map(|text| serde_json::from_str(&text))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("a result is not JSON: {e}")))?,
        cancel_requested: get::<i64>(row, "cancel_requested")? != 0,
        created_at: time(row, "created_at")?,
        updated_at: time(row, "updated_at")?,
        run_at: time(row, "run_at")?,
        finished_at: get::<Option<i64>>(row, "finished_at")?.map(super::from_millis),
        priority: i16::try_from(get::<i64>(row, "priority")?)
            .map_err(|_| StoreError::Corrupt("column `priority` is out of range".to_owned()))?,
    })
}
