//! Workers: claim due jobs, run each in a task of its own with its kind's
//! fn, keep its lease alive, and record how it ended.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::cancels::CancelRequests;
use super::kind::{JobFuture, JobKind};
use super::schedule::{self, ScheduledKind};
use super::state::{StartError, States, WorkerState};
use super::{Claimed, Finish, JobId, Lease, NextClaim, Store};
use crate::detached::Detached;
use crate::lane::blocking::AbortOnDrop;
use crate::stats::{JobFigures, JobOutcome, RunningJob};

pub(crate) type Outcome = Result<Option<serde_json::Value>, Failure>;
type RunFn = dyn Fn(JobContext, serde_json::Value) -> JobFuture + Send + Sync;

/// Why an attempt did not succeed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The fn returned an error: retried while attempts are left.
    Error(String),
    /// The stored arguments do not fit the fn any more: dead at once.
    Payload(String),
}

/// What a running job sees: its id and attempt, a way to report progress,
/// and whether it should stop.
#[derive(Clone, Debug)]
pub struct JobContext {
    id: JobId,
    attempt: u32,
    progress: Arc<watch::Sender<Option<(u8, String)>>>,
    stop: watch::Receiver<bool>,
    /// Where the job's `State<T>` arguments come from.
    pub(super) states: States,
    slot: Option<SystemTime>,
}

impl JobContext {
    /// The running job's id, as its status route names it.
    pub fn id(&self) -> JobId {
        self.id
    }

    /// This attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// For a job of a scheduled kind (`#[background(every = "..")]`,
    /// `#[background(cron = "..")]`), the slot the workers enqueued it
    /// for, however late it runs; `None` for a job enqueued otherwise.
    pub fn slot(&self) -> Option<SystemTime> {
        self.slot
    }

    /// Records progress, 0 to 100, with a message for the job's status. It
    /// returns at once, in async and in sync bodies alike: the worker
    /// writes the latest report to the store (reports made while it writes
    /// one are merged into the next), and a report the store refuses is
    /// logged, not returned, since progress is advice.
    pub fn progress(&self, percent: u8, message: impl Into<String>) {
        self.progress
            .send_replace(Some((percent.min(100), message.into())));
    }

    /// Whether this attempt should stop: its job's cancellation was
    /// requested, it ran past its timeout, or the workers' shutdown
    /// deadline passed. An async body is dropped at its next `.await` then;
    /// a sync body cannot be stopped from outside, so a long one should
    /// look here between steps and return.
    pub fn is_cancelled(&self) -> bool {
        *self.stop.borrow()
    }

    /// Resolves once this attempt should stop (see
    /// [`is_cancelled`](Self::is_cancelled)).
    pub async fn cancelled(&self) {
        let mut stop = self.stop.clone();
        let _ = stop.wait_for(|stop| *stop).await;
    }
}

/// The error a job fn returns when it stops because it was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cancelled;

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for Cancelled {}

/// How the workers run: which queues, how many jobs at once, and the
/// lease, retry and shutdown timings.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// `None`: `default` and every queue a registered kind declared.
    queues: Option<Vec<String>>,
    concurrency: usize,
    lease: Duration,
    idle_wait: Duration,
    backoff: Duration,
    max_backoff: Duration,
    states: States,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            queues: None,
            concurrency: 16,
            lease: Duration::from_secs(30),
            idle_wait: Duration::from_secs(1),
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(3600),
            states: States::default(),
        }
    }
}

impl WorkerConfig {
    /// The queues to take jobs from. Default: `default`, and every queue
    /// named by a `#[background(queue = "...")]` kind in the registry.
    pub fn queues<S: Into<String>>(mut self, queues: impl IntoIterator<Item = S>) -> Self {
        self.queues = Some(queues.into_iter().map(Into::into).collect());
        self
    }

    /// Jobs run at once, across the queues. Default: 16.
    pub fn concurrency(mut self, jobs: usize) -> Self {
        self.concurrency = jobs.max(1);
        self
    }

    /// How long a claim holds a job without renewal; a job whose worker
    /// died runs again once it passes. Renewed every third of it. Default:
    /// 30 s.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// The longest an idle worker waits before it looks for jobs again;
    /// enqueues in this process (or, on PostgreSQL, in any) wake it sooner.
    /// Default: 1 s.
    pub fn idle_wait(mut self, wait: Duration) -> Self {
        self.idle_wait = wait;
        self
    }

    /// The delay before the first retry; each further retry waits twice as
    /// long, up to `max`, less a random part of up to half (jitter).
    /// Default: 1 s, up to 1 hour.
    pub fn backoff(mut self, first: Duration, max: Duration) -> Self {
        self.backoff = first;
        self.max_backoff = max.max(first);
        self
    }

    /// Gives `state` to the `#[background]` fns that take a `State<S>`
    /// argument: each job gets a clone of it when it runs (it is never
    /// stored with the job). One value per type: registering a type again
    /// replaces the earlier value. A kind the workers would claim that
    /// takes a state they were not given stops [`Workers::start`] with
    /// [`StartError::MissingState`].
    ///
    /// ```no_run
    /// use axum::extract::State;
    /// use lanes::jobs::WorkerConfig;
    ///
    /// #[derive(Clone)]
    /// struct AppState { greeting: String }
    ///
    /// #[lanes::background]
    /// async fn greet(State(app): State<AppState>, name: String) -> Result<String, String> {
    ///     Ok(format!("{}, {name}!", app.greeting))
    /// }
    ///
    /// # async fn example() -> Result<(), lanes::jobs::StartError> {
    /// let app = AppState { greeting: "Hello".to_owned() };
    /// let workers = lanes::jobs::start_workers(WorkerConfig::default().state(app.clone())).await?;
    /// // The same value serves the routes: `greet` is a handler that
    /// // extracts `State<AppState>` from the router, and does not store it.
    /// let router: axum::Router = axum::Router::new()
    ///     .route("/greet", axum::routing::post(greet))
    ///     .with_state(app);
    /// # Ok(()) }
    /// ```
    pub fn state<S: WorkerState>(mut self, state: S) -> Self {
        self.states.insert(state);
        self
    }

    /// The wait before the retry that follows `attempt`.
    fn retry_delay(&self, attempt: u32) -> Duration {
        let doubled = self
            .backoff
            .saturating_mul(1 << attempt.saturating_sub(1).min(31))
            .min(self.max_backoff);
        doubled.mul_f64(1.0 - fastrand::f64() / 2.0)
    }
}

/// The job kinds a worker can run, by name.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: HashMap<String, Arc<RunFn>>,
    /// The queues the `#[background]` kinds among them declared.
    queues: BTreeSet<String>,
    /// The `#[background]` kinds among them, for the states they take.
    background: Vec<&'static JobKind>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.kinds.keys()).finish()
    }
}

impl Registry {
    /// No kinds: add them with [`register`](Self::register), or start from
    /// [`Registry::registered`] for the `#[background]` fns.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Every `#[background]` fn linked into this program, each under its
    /// kind's name.
    ///
    /// # Panics
    /// If two of them have the same kind name (`kind = "..."`): jobs of
    /// that kind could run either fn.
    pub fn registered() -> Registry {
        let mut registry = Registry::new();
        for kind in JobKind::all() {
            assert!(
                !registry.kinds.contains_key(kind.name),
                "two #[background] fns are registered as the job kind `{}`; give one of them \
                 another name with `#[background(kind = \"...\")]`",
                kind.name
            );
            registry
                .kinds
                .insert(kind.name.to_owned(), Arc::new(kind.run));
            if let Some(queue) = kind.queue {
                registry.queues.insert(queue.to_owned());
            }
            registry.background.push(kind);
        }
        registry
    }

    /// The scheduled `#[background]` kinds among these
    /// (`#[background(every = "5m")]`, `#[background(cron = "0 3 * * *")]`),
    /// by name: each with its queue, its schedule as written and its next
    /// slot. Read-only, for a dashboard; [`Workers`] started with this
    /// registry enqueue the kinds of the queues they take, once per slot.
    ///
    /// ```
    /// for scheduled in lanes::jobs::Registry::registered().schedules() {
    ///     println!("{} on {}: {}, next at {:?}", scheduled.kind, scheduled.queue, scheduled.schedule, scheduled.next_slot);
    /// }
    /// ```
    pub fn schedules(&self) -> Vec<ScheduledKind> {
        let mut schedules: Vec<ScheduledKind> = self
            .background
            .iter()
            .filter_map(|kind| ScheduledKind::of(kind))
            .collect();
        schedules.sort_by_key(|scheduled| scheduled.kind);
        schedules
    }

    /// Registers `run` for the jobs of kind `kind`: the payload is
    /// deserialized into `A`, and an `Ok` value is kept as the job's result.
    pub fn register<A, F, Fut, T, E>(mut self, kind: impl Into<String>, run: F) -> Registry
    where
        A: DeserializeOwned + Send + 'static,
        F: Fn(JobContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: Serialize,
        E: fmt::Display,
    {
        let kind = kind.into();
        let name = kind.clone();
        let adapter = move |context: JobContext, payload: serde_json::Value| {
            match serde_json::from_value(payload) {
                Ok(args) => super::kind::attempt(run(context, args)),
                Err(error) => super::kind::unreadable(format!(
                    "the stored arguments of `{name}` no longer fit its parameters (did their type change?): {error}"
                )),
            }
        };
        // The closure runs the kind now, with no state to give.
        self.background.retain(|background| background.name != kind);
        self.kinds.insert(kind, Arc::new(adapter));
        self
    }
}

/// Workers started by [`Workers::start`]; [`Workers::shutdown`] stops them.
#[derive(Debug)]
pub struct Workers {
    stop: watch::Sender<bool>,
    release: watch::Sender<bool>,
    loops: JoinSet<()>,
    running: Arc<tokio::sync::Mutex<JoinSet<()>>>,
}

/// How long the jobs still running at the shutdown deadline get to write
/// their release.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// How often each queue's waiting jobs are counted, for
/// `lanes_jobs_waiting` and [`crate::stats`].
const COUNT_WAITING_EVERY: Duration = Duration::from_secs(5);

impl Workers {
    /// Starts taking jobs from `store` on the current tokio runtime, and
    /// enqueueing the scheduled kinds of the queues they take, once per
    /// slot (see [`Registry::schedules`] and `#[background(every = "..")]`).
    ///
    /// # Errors
    /// [`StartError::MissingState`] if a `#[background]` kind of a queue
    /// the workers take has a `State<S>` argument and `config` was given
    /// no `S` ([`WorkerConfig::state`]); nothing is started then.
    pub fn start(
        store: Store,
        registry: Registry,
        config: WorkerConfig,
    ) -> Result<Workers, StartError> {
        let worker: Arc<str> = format!("{}-{}", std::process::id(), JobId::random()).into();
        let (stop, stopped) = watch::channel(false);
        let (release, released) = watch::channel(false);
        let slots = Arc::new(tokio::sync::Semaphore::new(config.concurrency));
        let running = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
        let queues = config.queues.clone().unwrap_or_else(|| {
            let mut queues = registry.queues.clone();
            queues.insert(super::DEFAULT_QUEUE.to_owned());
            queues.into_iter().collect()
        });
        config
            .states
            .check(registry.background.iter().copied(), &queues)?;
        let shared = Arc::new(Shared {
            store,
            registry,
            config,
            worker,
            claims: AtomicU64::new(0),
            released,
            stopped: stopped.clone(),
            waiting_for_a_slot: queues
                .iter()
                .map(|queue| (queue.clone(), AtomicBool::new(false)))
                .collect(),
        });
        let mut loops = JoinSet::new();
        for queue in queues.iter().cloned() {
            loops.spawn(count_waiting(
                shared.clone(),
                queue.clone(),
                stopped.clone(),
            ));
            loops.spawn(claim_loop(
                shared.clone(),
                queue,
                slots.clone(),
                running.clone(),
                stopped.clone(),
            ));
        }
        // The kinds of the queues these workers take.
        let scheduled = shared.registry.background.iter().filter_map(|kind| {
            kind.schedule
                .filter(|_| kind.taken_by(&queues))
                .map(|schedule| (*kind, schedule))
        });
        for (kind, schedule) in scheduled {
            match schedule.slots() {
                Ok(slots) => {
                    loops.spawn(schedule::enqueue_each_slot(
                        shared.store.clone(),
                        kind,
                        schedule,
                        slots,
                        stopped.clone(),
                    ));
                }
                Err(error) => tracing::error!(
                    kind = kind.name,
                    error,
                    "lanes: a schedule cannot be read; its jobs are not enqueued"
                ),
            }
        }
        Ok(Workers {
            stop,
            release,
            loops,
            running,
        })
    }

    /// Stops taking jobs and enqueueing scheduled ones at once, and lets
    /// the running ones finish within `deadline`. Jobs still running then are released: queued again at
    /// once, this attempt not counted, so that the next worker (in this
    /// process or another) resumes them without waiting for their lease to
    /// run out. Jobs not yet taken stay queued.
    ///
    /// A sync body still running at the deadline cannot be stopped; its job
    /// is released all the same, and whatever it writes later is refused
    /// (the release ended its claim).
    pub async fn shutdown(mut self, deadline: Duration) {
        let _ = self.stop.send(true);
        while self.loops.join_next().await.is_some() {}
        let mut running = self.running.lock().await;
        if all_end_within(&mut running, deadline).await {
            return;
        }
        let jobs = running.len();
        let _ = self.release.send(true);
        if all_end_within(&mut running, RELEASE_WAIT).await {
            tracing::info!(
                jobs,
                "lanes: jobs still running at the shutdown deadline were released; the next worker resumes them at once"
            );
        } else {
            tracing::warn!(
                jobs = running.len(),
                "lanes: jobs still running at the shutdown deadline could not all be released; the rest run again once their lease runs out"
            );
            running.shutdown().await;
        }
    }
}

/// Whether every task of `running` ended within `limit`.
async fn all_end_within(running: &mut JoinSet<()>, limit: Duration) -> bool {
    tokio::time::timeout(limit, async {
        while running.join_next().await.is_some() {}
    })
    .await
    .is_ok()
}

#[derive(Debug)]
struct Shared {
    store: Store,
    registry: Registry,
    config: WorkerConfig,
    worker: Arc<str>,
    /// Claims made so far, for each claim's own `worker` string.
    claims: AtomicU64,
    /// True from the shutdown deadline: running attempts release their jobs.
    released: watch::Receiver<bool>,
    /// True from the shutdown: no more claims.
    stopped: watch::Receiver<bool>,
    /// Whether each queue's claim loop waits for a free slot. A slot whose
    /// job ends claims its next job itself, from the same queue, unless
    /// another queue waits: then it frees the slot for that one, so that a
    /// busy queue does not starve the others.
    waiting_for_a_slot: HashMap<String, AtomicBool>,
}

impl Shared {
    /// The `worker` a claim names: this worker's id and the claim's number,
    /// so that the writes of a stale attempt are refused once the job is
    /// claimed again, by this process or another.
    fn claimant(&self) -> Arc<str> {
        let claim = self.claims.fetch_add(1, Ordering::Relaxed);
        format!("{}/{claim}", self.worker).into()
    }
}

/// Counts `queue`'s waiting jobs every [`COUNT_WAITING_EVERY`].
async fn count_waiting(shared: Arc<Shared>, queue: String, mut stopped: watch::Receiver<bool>) {
    loop {
        match shared.store.waiting(&queue).await {
            Ok(jobs) => crate::stats::record_waiting(&queue, jobs),
            Err(error) => {
                tracing::debug!(%error, queue, "lanes: could not count a queue's waiting jobs");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(COUNT_WAITING_EVERY) => {}
            _ = stopped.wait_for(|stopped| *stopped) => return,
        }
    }
}

async fn claim_loop(
    shared: Arc<Shared>,
    queue: String,
    slots: Arc<tokio::sync::Semaphore>,
    running: Arc<tokio::sync::Mutex<JoinSet<()>>>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut wakeups = match shared.store.wakeups().await {
        Ok(wakeups) => Some(wakeups),
        Err(error) => {
            tracing::warn!(%error, "lanes: job wakeups are unavailable; the workers poll");
            None
        }
    };
    while !*stopped.borrow() {
        // Claim only as many jobs as there are free slots.
        let waiting = &shared.waiting_for_a_slot[&queue];
        waiting.store(true, Ordering::Relaxed);
        let free = tokio::select! {
            permits = slots.clone().acquire_many_owned(1) => permits.expect("never closed"),
            _ = stopped.changed() => break,
        };
        waiting.store(false, Ordering::Relaxed);
        let available = slots.available_permits() + 1;
        drop(free);
        let claimant = shared.claimant();
        let claimed = match shared
            .store
            .claim(&queue, &claimant, shared.config.lease, available)
            .await
        {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!(%error, queue, "lanes: could not claim jobs; retrying");
                Vec::new()
            }
        };
        if claimed.is_empty() {
            let idle = shared.config.idle_wait;
            tokio::select! {
                _ = async {
                    match wakeups.as_mut() {
                        Some(wakeups) => wakeups.wait(idle).await,
                        None => tokio::time::sleep(idle).await,
                    }
                } => {}
                _ = stopped.changed() => break,
            }
            continue;
        }
        let mut running = running.lock().await;
        for job in claimed {
            waiting.store(true, Ordering::Relaxed);
            let slot = slots.clone().acquire_owned().await.expect("never closed");
            waiting.store(false, Ordering::Relaxed);
            let shared = shared.clone();
            let claimant = claimant.clone();
            running.spawn(async move {
                // The slot runs the jobs its finishes claim, until one
                // claims none.
                let mut next = Some((job, claimant));
                while let Some((job, claimant)) = next {
                    let attempt = Attempt {
                        shared: &shared,
                        job,
                        claimant,
                    };
                    next = attempt.run().await;
                }
                drop(slot);
            });
        }
        // Reap finished tasks so the set does not grow.
        while running.try_join_next().is_some() {}
    }
}

/// How a supervised attempt stopped.
enum Stopped {
    /// The job's fn returned, panicked or was aborted.
    Returned(Result<Outcome, tokio::task::JoinError>),
    TimedOut,
    CancelRequested,
    /// The shutdown deadline passed: the job goes back to the queue.
    Released,
    /// Another claim holds the job now.
    Lost,
}

/// One claimed job, run to its end: the worker's side of an attempt keeps
/// the lease alive, writes progress, hears cancellation, enforces the
/// timeout, and records how the attempt ended. It holds its slot and its
/// lease until every pool-thread body the attempt started has returned, so
/// that a retry never runs beside a timed-out body.
struct Attempt<'a> {
    shared: &'a Shared,
    job: Claimed,
    claimant: Arc<str>,
}

/// What an attempt waits on besides its body.
struct Watches {
    renewals: tokio::time::Interval,
    released: watch::Receiver<bool>,
}

/// How the pool-thread bodies of a stopped attempt ended.
enum Outlived {
    /// They returned, this long after the attempt stopped.
    Returned(Duration),
    Released,
    Lost,
}

/// The next job a slot runs, claimed with the last one's finish, and the
/// claim's `worker`.
type Next = Option<(Claimed, Arc<str>)>;

impl Attempt<'_> {
    async fn run(mut self) -> Next {
        let renew_every = self.shared.config.lease / 3;
        let mut renewals =
            tokio::time::interval_at(tokio::time::Instant::now() + renew_every, renew_every);
        renewals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut watches = Watches {
            renewals,
            released: self.shared.released.clone(),
        };
        let (id, attempt) = (self.job.id, self.job.attempt);
        let figures = JobFigures::of(&self.job.kind, &self.job.queue);
        let waited = SystemTime::now()
            .duration_since(self.job.due_at)
            .unwrap_or_default();
        let mut counted = figures.started(waited);
        let Some(run) = self.shared.registry.kinds.get(&self.job.kind).cloned() else {
            let error = format!(
                "no job kind `{}` is registered in this worker",
                self.job.kind
            );
            return self.end(Finish::Dead { error }, &mut counted).await;
        };
        let mut cancel_requests = CancelRequests::listen(id);
        let (stop, stopping) = watch::channel(false);
        // Kept here too, so that the last report can be read once the body
        // (and its context) is gone.
        let progress = Arc::new(watch::Sender::new(None));
        let mut progressed = progress.subscribe();
        let context = JobContext {
            id,
            attempt,
            progress: progress.clone(),
            stop: stopping,
            states: self.shared.config.states.clone(),
            slot: schedule::slot_in(&self.job.payload),
        };
        let detached = Detached::new();
        let payload = std::mem::take(&mut self.job.payload);
        // Aborted with this attempt's supervisor too (the runtime shuts down).
        let mut task = AbortOnDrop(tokio::spawn(detached.scope(run(context, payload).0)));
        let expiry = tokio::time::sleep(self.job.timeout);
        tokio::pin!(expiry);
        let stopped = loop {
            tokio::select! {
                biased;
                ended = &mut task => break Stopped::Returned(ended),
                () = &mut expiry => break Stopped::TimedOut,
                () = until_set(&mut watches.released) => break Stopped::Released,
                () = cancel_requests.requested() => break Stopped::CancelRequested,
                _ = watches.renewals.tick() => match self.renew().await {
                    Some(Lease::CancelRequested) => break Stopped::CancelRequested,
                    Some(Lease::Lost) => break Stopped::Lost,
                    _ => {}
                },
                Ok(()) = progressed.changed() => self.write_progress(&progressed).await,
            }
        };
        let how = match stopped {
            Stopped::Returned(ended) => {
                if progressed.has_changed().unwrap_or(false) {
                    self.write_progress(&progressed).await;
                }
                match ended {
                    Ok(Ok(result)) => Finish::Succeeded(result),
                    Ok(Err(Failure::Payload(error))) => Finish::Dead { error },
                    Ok(Err(Failure::Error(error))) => self.failed(error),
                    Err(joined) if joined.is_panic() => {
                        self.failed(format!("panicked: {}", panic_message(joined.into_panic())))
                    }
                    Err(_) => self.failed("stopped".to_owned()),
                }
            }
            Stopped::TimedOut | Stopped::CancelRequested => {
                // A sync body sees this through `is_cancelled`; an async one
                // is dropped.
                stop.send_replace(true);
                task.0.abort();
                let _ = (&mut task).await;
                let overran = match self.outlive(&detached, &mut watches).await {
                    Outlived::Returned(overran) => overran,
                    Outlived::Released => {
                        self.release(&mut counted).await;
                        return None;
                    }
                    Outlived::Lost => return None,
                };
                if matches!(stopped, Stopped::CancelRequested) {
                    Finish::Cancelled
                } else {
                    let limit = self.job.timeout;
                    let mut error = format!("timed out after {}", seconds(limit));
                    if overran >= Duration::from_millis(100) {
                        error.push_str(&format!("; the body ran {} longer", seconds(overran)));
                    }
                    self.failed(error)
                }
            }
            Stopped::Released => {
                stop.send_replace(true);
                self.release(&mut counted).await;
                return None;
            }
            Stopped::Lost => {
                tracing::warn!(
                    kind = self.job.kind,
                    job = %id,
                    attempt,
                    "lanes: a job's lease ran out while it ran and another worker took it; this attempt's outcome is dropped"
                );
                return None;
            }
        };
        self.end(how, &mut counted).await
    }

    /// Keeps the lease while pool-thread bodies of this attempt run on
    /// after it stopped.
    async fn outlive(&self, detached: &Detached, watches: &mut Watches) -> Outlived {
        let since = Instant::now();
        loop {
            tokio::select! {
                () = detached.finished() => return Outlived::Returned(since.elapsed()),
                () = until_set(&mut watches.released) => return Outlived::Released,
                _ = watches.renewals.tick() => {
                    if self.renew().await == Some(Lease::Lost) {
                        return Outlived::Lost;
                    }
                }
            }
        }
    }

    /// Renews the lease; `None` when the store could not be reached (the
    /// lease may still hold until it runs out).
    async fn renew(&self) -> Option<Lease> {
        let renewed = self
            .shared
            .store
            .renew(self.job.id, &self.claimant, self.shared.config.lease)
            .await;
        match renewed {
            Ok(lease) => Some(lease),
            Err(error) => {
                tracing::warn!(job = %self.job.id, %error, "lanes: could not renew a job's lease");
                None
            }
        }
    }

    async fn write_progress(&self, progressed: &watch::Receiver<Option<(u8, String)>>) {
        let Some((percent, message)) = progressed.borrow().clone() else {
            return;
        };
        let written = self
            .shared
            .store
            .progress(self.job.id, &self.claimant, percent, Some(&message))
            .await;
        if let Err(error) = written {
            tracing::warn!(job = %self.job.id, %error, "lanes: could not record a job's progress");
        }
    }

    /// A failed attempt: retried while attempts are left, else dead.
    fn failed(&self, error: String) -> Finish {
        if self.job.attempt >= self.job.max_attempts {
            Finish::Dead { error }
        } else {
            let at = SystemTime::now() + self.shared.config.retry_delay(self.job.attempt);
            Finish::Retry { error, at }
        }
    }

    /// Records how the attempt ended, and tells the operator of a failure;
    /// in the same round trip to the store, claims the next job of the
    /// queue for this slot, unless the workers are stopping.
    async fn end(&self, how: Finish, counted: &mut RunningJob) -> Next {
        let (kind, id, attempt) = (&self.job.kind, self.job.id, self.job.attempt);
        let outcome = match &how {
            Finish::Succeeded(_) => JobOutcome::Succeeded,
            Finish::Cancelled => {
                tracing::info!(kind, job = %id, attempt, "lanes: a job was cancelled while it ran");
                JobOutcome::Cancelled
            }
            Finish::Retry { error, at } => {
                let retry_in = at.duration_since(SystemTime::now()).unwrap_or_default();
                tracing::warn!(
                    kind,
                    job = %id,
                    attempt,
                    max_attempts = self.job.max_attempts,
                    error,
                    retry_in_ms = retry_in.as_millis(),
                    "lanes: a job's attempt failed; it will run again"
                );
                JobOutcome::Retried
            }
            Finish::Dead { error } => {
                tracing::error!(
                    kind,
                    job = %id,
                    attempt,
                    error,
                    "lanes: a job is dead; it will not run again"
                );
                JobOutcome::Dead
            }
        };
        counted.ended(outcome);
        let claimant = self.shared.claimant();
        let store = &self.shared.store;
        let another_queue_waits = self
            .shared
            .waiting_for_a_slot
            .iter()
            .any(|(queue, waiting)| *queue != self.job.queue && waiting.load(Ordering::Relaxed));
        let finished = if *self.shared.stopped.borrow() || another_queue_waits {
            store
                .finish(id, &self.claimant, how)
                .await
                .map(|recorded| (recorded, Vec::new()))
        } else {
            let next = NextClaim::new(&*self.job.queue, &*claimant, self.shared.config.lease, 1);
            store.finish_and_claim(id, &self.claimant, how, next).await
        };
        match finished {
            Ok((recorded, claimed)) => {
                if !recorded {
                    tracing::warn!(
                        kind,
                        job = %id,
                        attempt,
                        "lanes: a job's outcome was not recorded: another worker holds it now"
                    );
                }
                claimed.into_iter().next().map(|job| (job, claimant))
            }
            // The lease runs out and the job runs again: at least once.
            Err(error) => {
                tracing::warn!(kind, job = %id, %error, "lanes: could not record how a job ended; it runs again once its lease runs out");
                None
            }
        }
    }

    /// Gives the job back to the queue at the shutdown deadline.
    async fn release(&self, counted: &mut RunningJob) {
        counted.ended(JobOutcome::Released);
        let id = self.job.id;
        if let Err(error) = self.shared.store.release(id, &self.claimant).await {
            tracing::warn!(job = %id, %error, "lanes: could not release a job at shutdown; it runs again once its lease runs out");
        }
    }
}

/// Resolves once `flag` is true (never, if its sender is gone first).
async fn until_set(flag: &mut watch::Receiver<bool>) {
    if flag.wait_for(|set| *set).await.is_err() {
        std::future::pending::<()>().await;
    }
}

fn seconds(duration: Duration) -> String {
    let seconds = duration.as_secs_f64();
    if seconds >= 10.0 {
        format!("{seconds:.0} s")
    } else {
        format!("{seconds:.1} s")
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic".to_owned())
}
