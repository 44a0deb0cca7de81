//! Workers: claim due jobs, run each in a task of its own with its kind's
//! fn, keep its lease alive, and record how it ended.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::kind::{JobFuture, JobKind};
use super::state::{StartError, States, WorkerState};
use super::{Claimed, Finish, JobId, Lease, Store};
use crate::lane::blocking::AbortOnDrop;

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
/// and whether its cancellation was requested.
#[derive(Clone, Debug)]
pub struct JobContext {
    id: JobId,
    attempt: u32,
    store: Store,
    worker: Arc<str>,
    cancel: watch::Receiver<bool>,
    /// Where the job's `State<T>` arguments come from.
    pub(super) states: States,
}

impl JobContext {
    pub fn id(&self) -> JobId {
        self.id
    }

    /// This attempt's number, from 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Records progress, 0 to 100, with a message for the job's status.
    /// A failure to record it is logged, not returned: progress is advice.
    pub async fn progress(&self, percent: u8, message: impl Into<String>) {
        let message = message.into();
        if let Err(error) = self
            .store
            .progress(self.id, &self.worker, percent, Some(&message))
            .await
        {
            tracing::warn!(job = %self.id, %error, "lanes: could not record a job's progress");
        }
    }

    /// [`progress`](Self::progress) for a synchronous job fn, which runs
    /// on the blocking lane.
    ///
    /// # Panics
    /// When called from async code (it blocks the thread until the
    /// progress is stored); there, await [`progress`](Self::progress).
    pub fn progress_blocking(&self, percent: u8, message: impl Into<String>) {
        tokio::runtime::Handle::current().block_on(self.progress(percent, message));
    }

    /// Whether the job's cancellation was requested (seen at the worker's
    /// next lease renewal).
    pub fn is_cancelled(&self) -> bool {
        *self.cancel.borrow()
    }

    /// Resolves once the job's cancellation is requested.
    pub async fn cancelled(&self) {
        let mut cancel = self.cancel.clone();
        let _ = cancel.wait_for(|cancelled| *cancelled).await;
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
    loops: JoinSet<()>,
    running: Arc<tokio::sync::Mutex<JoinSet<()>>>,
}

impl Workers {
    /// Starts taking jobs from `store` on the current tokio runtime.
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
        let slots = Arc::new(tokio::sync::Semaphore::new(config.concurrency));
        let running = Arc::new(tokio::sync::Mutex::new(JoinSet::new()));
        let queues = config.queues.clone().unwrap_or_else(|| {
            let mut queues = registry.queues.clone();
            queues.insert("default".to_owned());
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
        });
        let mut loops = JoinSet::new();
        for queue in queues {
            loops.spawn(claim_loop(
                shared.clone(),
                queue,
                slots.clone(),
                running.clone(),
                stopped.clone(),
            ));
        }
        Ok(Workers {
            stop,
            loops,
            running,
        })
    }

    /// Stops taking jobs, and lets the running ones finish within
    /// `deadline`. Jobs still running then are stopped and will run again
    /// (their lease runs out); jobs not yet taken stay queued.
    pub async fn shutdown(mut self, deadline: Duration) {
        let _ = self.stop.send(true);
        while self.loops.join_next().await.is_some() {}
        let mut running = self.running.lock().await;
        let drained = tokio::time::timeout(deadline, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                jobs = running.len(),
                "lanes: jobs still running at the shutdown deadline were stopped; they will run again"
            );
            running.shutdown().await;
        }
    }
}

#[derive(Debug)]
struct Shared {
    store: Store,
    registry: Registry,
    config: WorkerConfig,
    worker: Arc<str>,
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
        let free = tokio::select! {
            permits = slots.clone().acquire_many_owned(1) => permits.expect("never closed"),
            _ = stopped.changed() => break,
        };
        let available = slots.available_permits() + 1;
        drop(free);
        let claimed = match shared
            .store
            .claim(&queue, &shared.worker, shared.config.lease, available)
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
            let slot = slots.clone().acquire_owned().await.expect("never closed");
            let shared = shared.clone();
            running.spawn(async move {
                run(&shared, job).await;
                drop(slot);
            });
        }
        // Reap finished tasks so the set does not grow.
        while running.try_join_next().is_some() {}
    }
}

/// Runs one claimed job to its end and records it.
async fn run(shared: &Shared, job: Claimed) {
    let Claimed {
        id,
        kind,
        payload,
        attempt,
        max_attempts,
        timeout,
        ..
    } = job;
    let store = &shared.store;
    let worker = &*shared.worker;
    let Some(run) = shared.registry.kinds.get(&kind).cloned() else {
        let error = format!("no job kind `{kind}` is registered in this worker");
        record(store, id, worker, Finish::Dead { error }).await;
        return;
    };
    let (cancel, cancelled) = watch::channel(false);
    let context = JobContext {
        id,
        attempt,
        store: store.clone(),
        worker: shared.worker.clone(),
        cancel: cancelled,
        states: shared.config.states.clone(),
    };
    // Aborted with this attempt: at the shutdown deadline, or when the
    // lease is lost.
    let mut task = AbortOnDrop(tokio::spawn(tokio::time::timeout(
        timeout,
        run(context, payload).0,
    )));
    let renew_every = shared.config.lease / 3;
    let ended = loop {
        tokio::select! {
            ended = &mut task => break Some(ended),
            _ = tokio::time::sleep(renew_every) => {
                match store.renew(id, worker, shared.config.lease).await {
                    Ok(Lease::Held) => {}
                    Ok(Lease::CancelRequested) => drop(cancel.send(true)),
                    Ok(Lease::Lost) => break None,
                    Err(error) => tracing::warn!(job = %id, %error, "lanes: could not renew a job's lease"),
                }
            }
        }
    };
    let Some(ended) = ended else {
        // Another worker holds the job now; this attempt's outcome is moot.
        return;
    };
    let error = match ended {
        Ok(Ok(Ok(result))) => {
            record(store, id, worker, Finish::Succeeded(result)).await;
            return;
        }
        Ok(Ok(Err(Failure::Payload(error)))) => {
            record(store, id, worker, Finish::Dead { error }).await;
            return;
        }
        Ok(Ok(Err(Failure::Error(error)))) => error,
        Ok(Err(_)) => format!("timed out after {} s", timeout.as_secs_f64()),
        Err(joined) if joined.is_panic() => {
            format!("panicked: {}", panic_message(joined.into_panic()))
        }
        Err(_) => "stopped".to_owned(),
    };
    let how = if *cancel.borrow() {
        Finish::Cancelled
    } else if attempt >= max_attempts {
        Finish::Dead { error }
    } else {
        let at = SystemTime::now() + shared.config.retry_delay(attempt);
        Finish::Retry { error, at }
    };
    record(store, id, worker, how).await;
}

async fn record(store: &Store, id: JobId, worker: &str, how: Finish) {
    if let Err(error) = store.finish(id, worker, how).await {
        // The lease runs out and the job runs again: at least once.
        tracing::warn!(job = %id, %error, "lanes: could not record how a job ended");
    }
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-text panic".to_owned())
}
