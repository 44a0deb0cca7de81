//! The in-memory store: bounded, for tests and for jobs that may be lost.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::{
    Claimed, Cursor, DEFAULT_MAX_UNFINISHED, Finish, Job, JobId, JobPage, JobQuery, JobState,
    Lease, NewJob, NextClaim, QueueCounts, Retried, StoreError, StoreOptions, millis,
};

/// A waiting job's place in its queue: higher priorities first, then by
/// due time.
type Waiting = (Reverse<i16>, i64, JobId);

fn waiting(job: &Job) -> Waiting {
    (Reverse(job.priority), millis::from(job.run_at), job.id)
}

#[derive(Clone, Debug)]
pub(super) struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
    pub(super) enqueued: Arc<watch::Sender<u64>>,
}

#[derive(Debug)]
struct Inner {
    options: StoreOptions,
    /// How many finished jobs are kept.
    capacity: usize,
    jobs: HashMap<JobId, Entry>,
    /// Per queue, the waiting jobs (queued or failed) by priority and
    /// due time.
    due: HashMap<String, BTreeSet<Waiting>>,
    /// The running jobs by lease end.
    leases: BTreeSet<(i64, JobId)>,
    keys: HashMap<String, JobId>,
    unfinished: usize,
    /// The unfinished jobs of each queue that has a bound of its own.
    unfinished_in: HashMap<String, u64>,
    /// Finished jobs, oldest first, forgotten past `capacity`.
    finished: VecDeque<JobId>,
}

#[derive(Debug)]
struct Entry {
    job: Job,
    payload: serde_json::Value,
    timeout: Duration,
    worker: Option<String>,
    lease_until: i64,
    idempotency_key: Option<String>,
}

impl MemoryStore {
    pub(super) fn new(options: StoreOptions) -> MemoryStore {
        let capacity = options.max_unfinished.unwrap_or(DEFAULT_MAX_UNFINISHED);
        MemoryStore {
            inner: Arc::new(Mutex::new(Inner {
                options,
                capacity: usize::try_from(capacity).unwrap_or(usize::MAX),
                jobs: HashMap::new(),
                due: HashMap::new(),
                leases: BTreeSet::new(),
                keys: HashMap::new(),
                unfinished: 0,
                unfinished_in: HashMap::new(),
                finished: VecDeque::new(),
            })),
            enqueued: Arc::new(watch::Sender::new(0)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn enqueue(&self, new: NewJob) -> Result<JobId, StoreError> {
        let mut inner = self.lock();
        if let Some(id) = new
            .idempotency_key
            .as_ref()
            .and_then(|key| inner.keys.get(key))
        {
            return Ok(*id);
        }
        let in_queue = inner.unfinished_in.get(&new.queue).copied().unwrap_or(0);
        if let Some(refused) = inner
            .options
            .refusal(&new.queue, inner.unfinished as u64, in_queue)
        {
            return Err(refused);
        }
        if inner.options.bounds_queue(&new.queue) {
            *inner.unfinished_in.entry(new.queue.clone()).or_default() += 1;
        }
        let now = SystemTime::now();
        let id = JobId::random();
        let run_at = new.run_at.unwrap_or(now);
        let job = Job {
            id,
            kind: new.kind,
            queue: new.queue,
            state: JobState::Queued,
            attempts: 0,
            max_attempts: new.max_attempts.max(1),
            progress: 0,
            message: None,
            error: None,
            result: None,
            cancel_requested: false,
            created_at: now,
            updated_at: now,
            run_at,
            finished_at: None,
            priority: new.priority,
        };
        inner
            .due
            .entry(job.queue.clone())
            .or_default()
            .insert(waiting(&job));
        if let Some(key) = &new.idempotency_key {
            inner.keys.insert(key.clone(), id);
        }
        inner.unfinished += 1;
        inner.jobs.insert(
            id,
            Entry {
                job,
                payload: new.payload,
                timeout: new.timeout,
                worker: None,
                lease_until: 0,
                idempotency_key: new.idempotency_key,
            },
        );
        drop(inner);
        self.enqueued.send_modify(|count| *count += 1);
        Ok(id)
    }

    pub(super) fn claim(&self, next: &NextClaim) -> Vec<Claimed> {
        let (queue, worker, lease, limit) = (
            next.queue.as_str(),
            next.worker.as_str(),
            next.lease,
            next.limit,
        );
        let mut inner = self.lock();
        let now = millis::now();
        let lease_until = now + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        let mut claimed = Vec::new();
        // Jobs whose worker's lease ran out, first: they have waited longest.
        let expired: Vec<JobId> = inner
            .leases
            .iter()
            .take_while(|(until, _)| *until <= now)
            .map(|(_, id)| *id)
            .collect();
        for id in expired {
            if claimed.len() == limit {
                break;
            }
            let entry = inner.jobs.get(&id).expect("a leased job is stored");
            if entry.job.queue != queue {
                continue;
            }
            let (until, exhausted) = (
                entry.lease_until,
                entry.job.attempts >= entry.job.max_attempts,
            );
            inner.leases.remove(&(until, id));
            if exhausted {
                inner.end(id, JobState::Dead, Some(super::LEASE_LOST.to_owned()), None);
            } else {
                // Due since its lease ran out.
                inner.jobs.get_mut(&id).expect("checked above").job.run_at =
                    super::from_millis(until);
                claimed.push(inner.start(id, worker, lease_until));
            }
        }
        let mut from = Bound::Unbounded;
        while claimed.len() < limit {
            let Some(waiting) = inner.due.get_mut(queue) else {
                break;
            };
            let Some(&(priority, due, id)) = waiting.range((from, Bound::Unbounded)).next() else {
                break;
            };
            if due > now {
                // None of this priority is due: on to the next one down.
                let Some(lower) = priority.0.checked_sub(1) else {
                    break;
                };
                from = Bound::Included((Reverse(lower), i64::MIN, JobId(uuid::Uuid::nil())));
                continue;
            }
            waiting.remove(&(priority, due, id));
            claimed.push(inner.start(id, worker, lease_until));
        }
        claimed
    }

    pub(super) fn renew(&self, id: JobId, worker: &str, lease: Duration) -> Lease {
        let mut inner = self.lock();
        let Some(entry) = inner.jobs.get_mut(&id).filter(|e| e.holds(worker)) else {
            return Lease::Lost;
        };
        let old = entry.lease_until;
        entry.lease_until =
            millis::now() + i64::try_from(lease.as_millis()).unwrap_or(i64::MAX / 2);
        entry.job.updated_at = SystemTime::now();
        let (new, cancel) = (entry.lease_until, entry.job.cancel_requested);
        inner.leases.remove(&(old, id));
        inner.leases.insert((new, id));
        if cancel {
            Lease::CancelRequested
        } else {
            Lease::Held
        }
    }

    pub(super) fn progress(
        &self,
        id: JobId,
        worker: &str,
        percent: u8,
        message: Option<&str>,
    ) -> bool {
        let mut inner = self.lock();
        let Some(entry) = inner.jobs.get_mut(&id).filter(|e| e.holds(worker)) else {
            return false;
        };
        entry.job.progress = percent;
        entry.job.message = message.map(str::to_owned);
        entry.job.updated_at = SystemTime::now();
        true
    }

    pub(super) fn finish(&self, id: JobId, worker: &str, how: Finish) -> bool {
        let mut inner = self.lock();
        let Some(entry) = inner.jobs.get(&id).filter(|e| e.holds(worker)) else {
            return false;
        };
        let until = entry.lease_until;
        inner.leases.remove(&(until, id));
        match how {
            Finish::Succeeded(result) => inner.end(id, JobState::Succeeded, None, result),
            Finish::Dead { error } => inner.end(id, JobState::Dead, Some(error), None),
            Finish::Cancelled => inner.end(id, JobState::Cancelled, None, None),
            Finish::Retry { error, at } => {
                inner.jobs.get_mut(&id).expect("checked above").job.error = Some(error);
                inner.wait_again(id, JobState::Failed, at);
            }
        }
        true
    }

    pub(super) fn release(&self, id: JobId, worker: &str) -> bool {
        let mut inner = self.lock();
        let Some(entry) = inner.jobs.get_mut(&id).filter(|e| e.holds(worker)) else {
            return false;
        };
        entry.job.attempts -= 1;
        let until = entry.lease_until;
        inner.leases.remove(&(until, id));
        inner.wait_again(id, JobState::Queued, SystemTime::now());
        true
    }

    pub(super) fn waiting(&self, queue: &str) -> u64 {
        self.lock().due.get(queue).map_or(0, |due| due.len() as u64)
    }

    pub(super) fn cancel(&self, id: JobId) -> Option<JobState> {
        let mut inner = self.lock();
        let entry = inner.jobs.get_mut(&id)?;
        match entry.job.state {
            JobState::Queued | JobState::Failed => {
                let key = waiting(&entry.job);
                let queue = entry.job.queue.clone();
                if let Some(waiting) = inner.due.get_mut(&queue) {
                    waiting.remove(&key);
                }
                inner.end(id, JobState::Cancelled, None, None);
                Some(JobState::Cancelled)
            }
            JobState::Running => {
                entry.job.cancel_requested = true;
                entry.job.updated_at = SystemTime::now();
                Some(JobState::Running)
            }
            state => Some(state),
        }
    }

    pub(super) fn unfinished(&self) -> u64 {
        self.lock().unfinished as u64
    }

    pub(super) fn get(&self, id: JobId) -> Option<Job> {
        self.lock().jobs.get(&id).map(|entry| entry.job.clone())
    }

    pub(super) fn list(&self, query: &JobQuery) -> JobPage {
        let inner = self.lock();
        let mut newest_first: Vec<&Job> = inner
            .jobs
            .values()
            .map(|entry| &entry.job)
            .filter(|job| query.matches(job))
            .filter(|job| query.after.is_none_or(|after| Cursor::of(job) < after))
            .collect();
        newest_first.sort_unstable_by_key(|job| Reverse(Cursor::of(job)));
        newest_first.truncate(query.limit + 1);
        query.page(newest_first.into_iter().cloned().collect())
    }

    pub(super) fn counts(&self) -> Vec<QueueCounts> {
        let inner = self.lock();
        QueueCounts::from_rows(
            inner
                .jobs
                .values()
                .map(|entry| (entry.job.queue.clone(), entry.job.state, 1)),
        )
    }

    pub(super) fn delete(&self, id: JobId) -> Option<JobState> {
        let mut inner = self.lock();
        let state = inner.jobs.get(&id)?.job.state;
        if state.is_final() {
            let entry = inner.jobs.remove(&id).expect("checked above");
            if let Some(key) = entry.idempotency_key {
                inner.keys.remove(&key);
            }
            inner.finished.retain(|finished| *finished != id);
        }
        Some(state)
    }

    pub(super) fn retry(&self, id: JobId) -> Result<Option<Retried>, StoreError> {
        let mut inner = self.lock();
        let Some(entry) = inner.jobs.get(&id) else {
            return Ok(None);
        };
        let (state, queue) = (entry.job.state, entry.job.queue.clone());
        match state {
            JobState::Failed => {
                let key = waiting(&entry.job);
                if let Some(waiting) = inner.due.get_mut(&queue) {
                    waiting.remove(&key);
                }
            }
            JobState::Dead => {
                let in_queue = inner.unfinished_in.get(&queue).copied().unwrap_or(0);
                if let Some(refused) =
                    inner
                        .options
                        .refusal(&queue, inner.unfinished as u64, in_queue)
                {
                    return Err(refused);
                }
                inner.unfinished += 1;
                if inner.options.bounds_queue(&queue) {
                    *inner.unfinished_in.entry(queue).or_default() += 1;
                }
                // No longer among the finished, which are forgotten first.
                inner.finished.retain(|finished| *finished != id);
                let job = &mut inner.jobs.get_mut(&id).expect("checked above").job;
                job.attempts = 0;
                job.finished_at = None;
            }
            state => return Ok(Some(Retried::Refused(state))),
        }
        inner.wait_again(id, JobState::Queued, SystemTime::now());
        drop(inner);
        self.enqueued.send_modify(|count| *count += 1);
        Ok(Some(Retried::Queued))
    }
}

impl Entry {
    fn holds(&self, worker: &str) -> bool {
        self.job.state == JobState::Running && self.worker.as_deref() == Some(worker)
    }
}

impl Inner {
    /// Puts a job its worker let go of back among the waiting ones, due
    /// at `at`.
    fn wait_again(&mut self, id: JobId, state: JobState, at: SystemTime) {
        let entry = self.jobs.get_mut(&id).expect("a waiting job is stored");
        entry.job.state = state;
        entry.job.run_at = at;
        entry.job.updated_at = SystemTime::now();
        entry.worker = None;
        let (queue, key) = (entry.job.queue.clone(), waiting(&entry.job));
        self.due.entry(queue).or_default().insert(key);
    }

    /// Hands a waiting (or lease-expired) job to `worker`.
    fn start(&mut self, id: JobId, worker: &str, lease_until: i64) -> Claimed {
        let entry = self.jobs.get_mut(&id).expect("a due job is stored");
        let now = SystemTime::now();
        entry.job.state = JobState::Running;
        entry.job.attempts += 1;
        entry.job.updated_at = now;
        entry.worker = Some(worker.to_owned());
        entry.lease_until = lease_until;
        self.leases.insert((lease_until, id));
        Claimed {
            id,
            kind: entry.job.kind.clone(),
            queue: entry.job.queue.clone(),
            payload: entry.payload.clone(),
            attempt: entry.job.attempts,
            max_attempts: entry.job.max_attempts,
            timeout: entry.timeout,
            due_at: entry.job.run_at,
        }
    }

    /// Moves a job to a final state, keeping it among the last finished.
    fn end(
        &mut self,
        id: JobId,
        state: JobState,
        error: Option<String>,
        result: Option<serde_json::Value>,
    ) {
        let entry = self.jobs.get_mut(&id).expect("an ending job is stored");
        let now = SystemTime::now();
        entry.job.state = state;
        if error.is_some() {
            entry.job.error = error;
        }
        entry.job.result = result;
        entry.job.updated_at = now;
        entry.job.finished_at = Some(now);
        entry.worker = None;
        self.unfinished -= 1;
        if let Some(in_queue) = self.unfinished_in.get_mut(&entry.job.queue) {
            *in_queue -= 1;
        }
        self.finished.push_back(id);
        while self.finished.len() > self.capacity {
            let Some(old) = self.finished.pop_front() else {
                break;
            };
            if let Some(key) = self
                .jobs
                .remove(&old)
                .and_then(|forgotten| forgotten.idempotency_key)
            {
                self.keys.remove(&key);
            }
        }
    }
}
