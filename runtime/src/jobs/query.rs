//! What an operator asks of a store beyond one job: pages of jobs
//! ([`Store::list`](super::Store::list)), counts by state
//! ([`Store::counts`](super::Store::counts)) and retries
//! ([`Store::retry`](super::Store::retry)).

use std::fmt;
use std::str::FromStr;

use super::{Job, JobId, JobState, millis};

/// The most jobs one page holds.
pub const MOST_JOBS_LISTED: usize = 500;

/// Which jobs [`Store::list`](super::Store::list) returns: those matching
/// every filter set, newest first, `limit` at a time (default 50, at most
/// [`MOST_JOBS_LISTED`]), after `after`.
///
/// ```
/// use lanes::jobs::{JobQuery, JobState};
///
/// let dead_emails = JobQuery::new().queue("emails").state(JobState::Dead).limit(20);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct JobQuery {
    /// Only the jobs of this queue.
    pub queue: Option<String>,
    /// Only the jobs in this state.
    pub state: Option<JobState>,
    /// Only the jobs of this kind (its full name, as the job's status
    /// shows it).
    pub kind: Option<String>,
    /// Set through [`JobQuery::limit`], which keeps it in range.
    pub(crate) limit: usize,
    /// The page after the one that returned this cursor.
    pub after: Option<Cursor>,
}

impl Default for JobQuery {
    fn default() -> JobQuery {
        JobQuery {
            queue: None,
            state: None,
            kind: None,
            limit: 50,
            after: None,
        }
    }
}

impl JobQuery {
    /// Every job, the newest 50 first.
    pub fn new() -> JobQuery {
        JobQuery::default()
    }

    /// Only the jobs of `queue`.
    pub fn queue(mut self, queue: impl Into<String>) -> JobQuery {
        self.queue = Some(queue.into());
        self
    }

    /// Only the jobs in `state`.
    pub fn state(mut self, state: JobState) -> JobQuery {
        self.state = Some(state);
        self
    }

    /// Only the jobs of `kind`.
    pub fn kind(mut self, kind: impl Into<String>) -> JobQuery {
        self.kind = Some(kind.into());
        self
    }

    /// At most `limit` jobs a page, from 1 to [`MOST_JOBS_LISTED`].
    pub fn limit(mut self, limit: usize) -> JobQuery {
        self.limit = limit.clamp(1, MOST_JOBS_LISTED);
        self
    }

    /// The page after the one whose [`JobPage::next`] is `cursor`.
    pub fn after(mut self, cursor: Cursor) -> JobQuery {
        self.after = Some(cursor);
        self
    }

    /// Whether `job` passes the filters (not the cursor).
    pub(crate) fn matches(&self, job: &Job) -> bool {
        self.queue.as_ref().is_none_or(|queue| *queue == job.queue)
            && self.kind.as_ref().is_none_or(|kind| *kind == job.kind)
            && self.state.is_none_or(|state| state == job.state)
    }

    /// The page of `newest_first` (matching jobs, newest first, from the
    /// cursor on, at least one more than the limit if there are more).
    pub(crate) fn page(&self, mut newest_first: Vec<Job>) -> JobPage {
        let more = newest_first.len() > self.limit;
        newest_first.truncate(self.limit);
        let next = more.then(|| newest_first.last().map(Cursor::of)).flatten();
        JobPage {
            jobs: newest_first,
            next,
        }
    }
}

/// One page of jobs, newest first.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct JobPage {
    /// At most the query's limit, newest first.
    pub jobs: Vec<Job>,
    /// Where the next page starts; `None` on the last page.
    pub next: Option<Cursor>,
}

/// Where a page ended: the creation time and id of its last (oldest) job.
/// Pages are cut by these keys, not by offsets, so jobs enqueued while an
/// operator pages through never shift the pages that follow: every job
/// stored when the first page was read shows once. The new ones are newer
/// and come before the first page (one made in the very millisecond of
/// the cursor's job may show on a later page instead).
///
/// It reads and prints as `<creation time in ms>_<job id>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(into = "String")]
pub struct Cursor {
    /// Milliseconds since the Unix epoch, as the SQL stores keep it.
    pub(crate) created_at: i64,
    pub(crate) id: JobId,
}

impl Cursor {
    pub(crate) fn of(job: &Job) -> Cursor {
        Cursor {
            created_at: millis::from(job.created_at),
            id: job.id,
        }
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}_{}", self.created_at, self.id)
    }
}

impl From<Cursor> for String {
    fn from(cursor: Cursor) -> String {
        cursor.to_string()
    }
}

/// A text that is not a [`Cursor`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadCursor;

impl fmt::Display for BadCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a page cursor: pass the `next` of the page before")
    }
}

impl std::error::Error for BadCursor {}

impl FromStr for Cursor {
    type Err = BadCursor;

    fn from_str(text: &str) -> Result<Cursor, BadCursor> {
        let (created_at, id) = text.split_once('_').ok_or(BadCursor)?;
        Ok(Cursor {
            created_at: created_at.parse().map_err(|_| BadCursor)?,
            id: id.parse().map_err(|_| BadCursor)?,
        })
    }
}

/// How many jobs of one queue wait, run, wait for a retry, or are dead
/// ([`Store::counts`](super::Store::counts)). Succeeded and cancelled
/// jobs are not counted: they are the whole history, which no index keeps
/// short; [`stats()`](crate::stats()) counts this process's outcomes.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct QueueCounts {
    /// The queue's name.
    pub queue: String,
    /// Waiting for a worker, now or from their `run_at`.
    pub queued: u64,
    /// Claimed by a worker (their lease may have run out unnoticed yet).
    pub running: u64,
    /// Their last attempt failed, and they wait for their retry.
    pub failed: u64,
    /// Every attempt failed; kept until deleted.
    pub dead: u64,
}

impl QueueCounts {
    /// Sorted by queue, from (queue, state, jobs) rows.
    pub(crate) fn from_rows(
        rows: impl IntoIterator<Item = (String, JobState, u64)>,
    ) -> Vec<QueueCounts> {
        let mut queues: std::collections::BTreeMap<String, QueueCounts> = Default::default();
        for (queue, state, jobs) in rows {
            let counts = queues.entry(queue.clone()).or_insert_with(|| QueueCounts {
                queue,
                ..QueueCounts::default()
            });
            match state {
                JobState::Queued => counts.queued += jobs,
                JobState::Running => counts.running += jobs,
                JobState::Failed => counts.failed += jobs,
                JobState::Dead => counts.dead += jobs,
                JobState::Succeeded | JobState::Cancelled => {}
            }
        }
        queues.into_values().collect()
    }
}

/// The statements that count [`QueueCounts`] on a SQL store, each through a
/// partial index: rows of (queue, state, jobs).
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) const COUNTS: [&str; 3] = [
    "SELECT queue, state, COUNT(*) FROM lanes_jobs WHERE state IN ('queued', 'failed') \
     GROUP BY queue, state",
    "SELECT queue, state, COUNT(*) FROM lanes_jobs WHERE state = 'running' GROUP BY queue, state",
    "SELECT queue, state, COUNT(*) FROM lanes_jobs WHERE state = 'dead' GROUP BY queue, state",
];

/// What [`Store::retry`](super::Store::retry) did with an existing job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retried {
    /// It was dead or failed, and is queued to run now. A dead job has
    /// all its attempts again; a failed one keeps those it has left.
    Queued,
    /// It was in this state, which a retry does not apply to (only dead
    /// and failed jobs are retried); nothing changed.
    Refused(JobState),
}

/// A value bound to a page's statement.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) enum PageValue {
    Text(String),
    Integer(i64),
}

/// A page's statement on a SQL store, and its values in order:
/// `placeholder(n)` writes the n-th (from 1), and `id` is how the id
/// column sorts (PostgreSQL's by bytes, whatever the database's
/// collation, so that it sorts as [`JobId`] does); one more job than the
/// limit.
///
/// Which index serves it follows the state asked for, so that the cost
/// follows the jobs of that state, not the history: the running jobs and
/// the waiting ones (queued, failed) are read through the claims' partial
/// indexes and sorted (they are few, or bounded); the dead ones walk an
/// index of their own from the cursor down; the others, and every job,
/// walk the creation index.
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub(crate) fn page_statement(
    query: &JobQuery,
    placeholder: impl Fn(usize) -> String,
    id: &str,
) -> (String, Vec<PageValue>) {
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    let bind = |value: PageValue, values: &mut Vec<PageValue>| {
        values.push(value);
        placeholder(values.len())
    };
    for (column, value) in [("queue", &query.queue), ("kind", &query.kind)] {
        if let Some(value) = value {
            let placeholder = bind(PageValue::Text(value.clone()), &mut values);
            conditions.push(format!("{column} = {placeholder}"));
        }
    }
    // States are written out, not bound (one of six words): a planner
    // takes a partial index only for a condition it can see. Each partial
    // index's own condition is repeated as written, which SQLite needs.
    let walks_created_index = match query.state {
        None => true,
        Some(JobState::Running) => {
            conditions.push("state = 'running'".to_owned());
            false
        }
        Some(waiting @ (JobState::Queued | JobState::Failed)) => {
            conditions.push(format!(
                "state IN ('queued', 'failed') AND state = '{}'",
                waiting.as_str()
            ));
            false
        }
        Some(ended @ (JobState::Dead | JobState::Succeeded | JobState::Cancelled)) => {
            conditions.push(format!("state = '{}'", ended.as_str()));
            true
        }
    };
    // `+ 0` keeps the planner off the creation index where it would walk
    // the history to find a few jobs.
    let created_at = if walks_created_index {
        "created_at"
    } else {
        "created_at + 0"
    };
    if let Some(after) = query.after {
        let at = bind(PageValue::Integer(after.created_at), &mut values);
        let after_id = bind(PageValue::Text(after.id.to_string()), &mut values);
        conditions.push(format!("({created_at}, {id}) < ({at}, {after_id})"));
    }
    let limit = bind(
        PageValue::Integer(i64::try_from(query.limit + 1).unwrap_or(i64::MAX)),
        &mut values,
    );
    let filter = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    (
        format!(
            "SELECT {} FROM lanes_jobs {filter} ORDER BY {created_at} DESC, {id} DESC \
             LIMIT {limit}",
            super::JOB_COLUMNS
        ),
        values,
    )
}
