//! Per-handler counters: kept in atomics for [`stats`], and sent through the
//! `metrics` facade for whatever recorder the service installed.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Unit};
use serde::Serialize;

use crate::clock::CLOCK;
use crate::config::lanes;
use crate::lane::{Lane, Site};
use crate::stack::Stack;

/// The counters of one lane fn.
#[derive(Debug)]
pub(crate) struct SiteStats {
    registered: AtomicBool,
    handles: OnceLock<Handles>,
    /// What every call writes, a shard per thread.
    shards: [Shard; SHARDS],
    shed: AtomicU64,
    panics: AtomicU64,
    slow_polls: AtomicU64,
    stuck_polls: AtomicU64,
    timeouts: AtomicU64,
    /// Where the watchdog last caught a poll of it stuck.
    last_stack: Mutex<Option<Stack>>,
    quarantine: QuarantineFigures,
}

/// How many shards a site's hot counters are split into. A thread writes
/// the shard of its index, so calls on different threads (up to this many)
/// never write one cache line; readers add the shards up.
const SHARDS: usize = 16;

/// Samples a shard keeps for the metrics recorder before it records them
/// itself; the flushing thread takes them long before.
const UNRECORDED_MOST: usize = 4096;

/// How often the gauges and the samples of every site reach the metrics
/// recorder.
const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// One thread's share of a site's counters. Calls leave their gauges and
/// histogram samples here; a flushing thread hands them to the recorder
/// every [`FLUSH_EVERY`], off the calls' path.
#[derive(Debug)]
#[repr(align(128))]
struct Shard {
    /// Calls that began to wait for their lane, and that stopped waiting.
    entered_queue: AtomicU64,
    left_queue: AtomicU64,
    started: AtomicU64,
    ended: AtomicU64,
    queue_wait: Timing,
    run: Timing,
    unrecorded: Mutex<Unrecorded>,
}

/// Samples in seconds, for the `lanes_queue_wait_seconds` and
/// `lanes_run_seconds` histograms.
#[derive(Debug)]
struct Unrecorded {
    queue_wait: Vec<f64>,
    run: Vec<f64>,
    /// Whether a sample was recorded at once since the last flush: the
    /// first one is, with the gauges, so that a quiet site's figures are
    /// current at any scrape; the next ones wait for the flush.
    recorded_at_once: bool,
}

impl Unrecorded {
    const fn new() -> Unrecorded {
        Unrecorded {
            queue_wait: Vec::new(),
            run: Vec::new(),
            recorded_at_once: false,
        }
    }
}

/// Which histogram a sample is for.
#[derive(Clone, Copy)]
enum Sample {
    QueueWait,
    Run,
}

impl Shard {
    const fn new() -> Shard {
        Shard {
            entered_queue: AtomicU64::new(0),
            left_queue: AtomicU64::new(0),
            started: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            queue_wait: Timing::new(),
            run: Timing::new(),
            unrecorded: Mutex::new(Unrecorded::new()),
        }
    }

    fn unrecorded(&self) -> std::sync::MutexGuard<'_, Unrecorded> {
        self.unrecorded.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The shard the calling thread writes.
fn shard_index() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Relaxed) % SHARDS;
    }
    INDEX.with(|index| *index)
}

/// A route's quarantine, as [`Watch`](crate::Watch) moves it.
#[derive(Debug)]
struct QuarantineFigures {
    state: AtomicU8,
    /// Calls run on a blocking-pool thread.
    calls: AtomicU64,
    /// Calls run on the event loop to see whether it still blocks.
    probes: AtomicU64,
    /// Times it was quarantined.
    entered: AtomicU64,
}

/// Where a route's calls run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RouteMode {
    /// On the event loop, each poll timed.
    EventLoop,
    /// Caught blocking: on blocking-pool threads, with a probe on the event
    /// loop now and then.
    Quarantined,
}

#[derive(Debug)]
struct Handles {
    in_flight: Gauge,
    queued: Gauge,
    queue_wait: Histogram,
    run: Histogram,
    shed: Counter,
    panics: Counter,
    slow_polls: Counter,
    stuck_polls: Counter,
    timeouts: Counter,
}

/// How many buckets a [`Timing`] counts its samples in: under 1 µs, then
/// half an octave each (within 19% of a sample), up to an hour or more.
const BUCKETS: usize = 64;

#[derive(Debug)]
struct Timing {
    count: AtomicU64,
    total_nanos: AtomicU64,
    max_nanos: AtomicU64,
    /// Samples by [`bucket`], for the quantiles.
    buckets: [AtomicU64; BUCKETS],
}

/// The bucket of a sample: 0 under 1 µs; then, from 1 µs, two a doubling.
fn bucket(nanos: u64) -> usize {
    let micros = nanos / 1_000;
    if micros == 0 {
        return 0;
    }
    let octave = 63 - micros.leading_zeros() as usize;
    let upper_half = octave > 0 && (micros >> (octave - 1)) & 1 == 1;
    (1 + 2 * octave + usize::from(upper_half)).min(BUCKETS - 1)
}

/// Where bucket `index` begins, in milliseconds.
fn bucket_start_ms(index: usize) -> f64 {
    if index == 0 {
        return 0.0;
    }
    let (octave, upper_half) = ((index - 1) / 2, (index - 1) % 2 == 1);
    let micros = (1u64 << octave) as f64 * if upper_half { 1.5 } else { 1.0 };
    micros / 1e3
}

impl Timing {
    const fn new() -> Timing {
        Timing {
            count: AtomicU64::new(0),
            total_nanos: AtomicU64::new(0),
            max_nanos: AtomicU64::new(0),
            buckets: [const { AtomicU64::new(0) }; BUCKETS],
        }
    }

    fn record(&self, took: Duration, histogram: &Histogram) {
        self.count(took);
        histogram.record(took.as_secs_f64());
    }

    fn count(&self, took: Duration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Relaxed);
        self.total_nanos.fetch_add(nanos, Relaxed);
        self.max_nanos.fetch_max(nanos, Relaxed);
        self.buckets[bucket(nanos)].fetch_add(1, Relaxed);
    }

    fn snapshot(&self) -> TimingStats {
        TimingStats::of([self])
    }
}

impl TimingStats {
    fn of<'a>(timings: impl IntoIterator<Item = &'a Timing>) -> TimingStats {
        let (mut count, mut total, mut max) = (0, 0, 0);
        let mut buckets = [0u64; BUCKETS];
        for timing in timings {
            count += timing.count.load(Relaxed);
            total += timing.total_nanos.load(Relaxed);
            max = max.max(timing.max_nanos.load(Relaxed));
            for (sum, bucket) in buckets.iter_mut().zip(&timing.buckets) {
                *sum += bucket.load(Relaxed);
            }
        }
        let max_ms = max as f64 / 1e6;
        // The middle of the bucket that holds the quantile, never above
        // the largest sample.
        let sampled: u64 = buckets.iter().sum();
        let quantile = |q: f64| {
            let rank = (q * sampled as f64).ceil().max(1.0) as u64;
            let mut seen = 0;
            for (index, in_bucket) in buckets.iter().enumerate() {
                seen += in_bucket;
                if seen >= rank {
                    let middle = (bucket_start_ms(index) + bucket_start_ms(index + 1)) / 2.0;
                    return middle.min(max_ms);
                }
            }
            0.0
        };
        TimingStats {
            count,
            mean_ms: if count == 0 {
                0.0
            } else {
                total as f64 / count as f64 / 1e6
            },
            p50_ms: quantile(0.5),
            p99_ms: quantile(0.99),
            max_ms,
        }
    }
}

impl SiteStats {
    pub(crate) const fn new() -> SiteStats {
        SiteStats {
            registered: AtomicBool::new(false),
            handles: OnceLock::new(),
            shards: [const { Shard::new() }; SHARDS],
            shed: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            slow_polls: AtomicU64::new(0),
            stuck_polls: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            last_stack: Mutex::new(None),
            quarantine: QuarantineFigures {
                state: AtomicU8::new(RouteMode::EventLoop as u8),
                calls: AtomicU64::new(0),
                probes: AtomicU64::new(0),
                entered: AtomicU64::new(0),
            },
        }
    }

    fn shard(&self) -> &Shard {
        &self.shards[shard_index()]
    }

    fn sum(&self, counter: impl Fn(&Shard) -> &AtomicU64) -> u64 {
        self.shards
            .iter()
            .map(|shard| counter(shard).load(Relaxed))
            .sum()
    }

    fn in_flight(&self) -> u64 {
        let ended = self.sum(|shard| &shard.ended);
        self.sum(|shard| &shard.started).saturating_sub(ended)
    }

    fn queued(&self) -> u64 {
        let left = self.sum(|shard| &shard.left_queue);
        self.sum(|shard| &shard.entered_queue).saturating_sub(left)
    }

    fn completed(&self) -> u64 {
        self.sum(|shard| &shard.run.count)
    }

    fn queue_wait(&self) -> TimingStats {
        TimingStats::of(self.shards.iter().map(|shard| &shard.queue_wait))
    }

    fn run(&self) -> TimingStats {
        TimingStats::of(self.shards.iter().map(|shard| &shard.run))
    }
}

/// Every lane fn that has been called, for [`stats`].
static SITES: Mutex<Vec<&'static Site>> = Mutex::new(Vec::new());

impl Site {
    /// The metric handles, taken on the first call, which also lists the
    /// site for [`stats`].
    fn handles(&'static self) -> &'static Handles {
        self.stats.handles.get_or_init(|| {
            if !self.stats.registered.swap(true, Relaxed) {
                SITES.lock().unwrap_or_else(|e| e.into_inner()).push(self);
            }
            describe_once();
            let named = if self.route { "route" } else { "handler" };
            let labels = [("lane", self.lane.as_str()), (named, self.name)];
            // Each lane exports the series that can move on it; a route can
            // wait for a place while it is quarantined.
            let offloaded = self.lane != Lane::IoBound;
            let waits = offloaded || self.route;
            let counter = |name: &'static str, applies: bool| {
                if applies {
                    metrics::counter!(name, &labels)
                } else {
                    Counter::noop()
                }
            };
            let gauge = |name: &'static str, applies: bool| {
                if applies {
                    metrics::gauge!(name, &labels)
                } else {
                    Gauge::noop()
                }
            };
            let histogram = |name: &'static str, applies: bool| {
                if applies {
                    metrics::histogram!(name, &labels)
                } else {
                    Histogram::noop()
                }
            };
            let handles = Handles {
                in_flight: gauge("lanes_calls_in_flight", true),
                queued: gauge("lanes_calls_queued", waits),
                queue_wait: histogram("lanes_queue_wait_seconds", waits),
                run: histogram("lanes_run_seconds", true),
                shed: counter("lanes_shed_total", waits),
                panics: counter("lanes_panics_total", true),
                slow_polls: counter("lanes_slow_polls_total", !offloaded),
                stuck_polls: counter("lanes_stuck_polls_total", !offloaded),
                timeouts: counter("lanes_timeouts_total", true),
            };
            // The gauges exist from the first call; the flushing thread
            // keeps them current.
            handles.in_flight.set(0.0);
            handles.queued.set(0.0);
            start_flushing();
            handles
        })
    }

    /// Hands this site's gauges and histogram samples to the recorder.
    fn flush(&'static self) {
        let handles = self.handles();
        handles.in_flight.set(self.stats.in_flight() as f64);
        handles.queued.set(self.stats.queued() as f64);
        for shard in &self.stats.shards {
            let taken = std::mem::replace(&mut *shard.unrecorded(), Unrecorded::new());
            taken.record(handles);
        }
    }

    /// Hands a call's sample to the recorder: at once (with the gauges) if
    /// it is the shard's first since the last flush, else with the flush.
    fn sample(&'static self, shard: &Shard, sample: Sample, seconds: f64) {
        let handles = self.handles();
        let mut unrecorded = shard.unrecorded();
        if !unrecorded.recorded_at_once {
            unrecorded.recorded_at_once = true;
            drop(unrecorded);
            match sample {
                Sample::QueueWait => handles.queue_wait.record(seconds),
                Sample::Run => handles.run.record(seconds),
            }
            handles.in_flight.set(self.stats.in_flight() as f64);
            handles.queued.set(self.stats.queued() as f64);
            return;
        }
        match sample {
            Sample::QueueWait => unrecorded.queue_wait.push(seconds),
            Sample::Run => unrecorded.run.push(seconds),
        }
        // Past this, the flushing thread is starved: memory stays bounded.
        if unrecorded.queue_wait.len() + unrecorded.run.len() >= UNRECORDED_MOST {
            std::mem::replace(&mut *unrecorded, Unrecorded::new()).record(handles);
        }
    }

    /// A call that waits for its lane; the wait ends with [`Queued::start`].
    pub(crate) fn queue(&'static self) -> Queued {
        self.handles();
        self.stats.shard().entered_queue.fetch_add(1, Relaxed);
        Queued {
            site: self,
            since: CLOCK.raw(),
        }
    }

    /// A call that runs at once (an `#[io_bound]` fn on its worker).
    pub(crate) fn run(&'static self) -> Running {
        Running::begin(self)
    }

    pub(crate) fn record_shed(&'static self) {
        self.stats.shed.fetch_add(1, Relaxed);
        self.handles().shed.increment(1);
    }

    pub(crate) fn record_slow_poll(&'static self) {
        self.stats.slow_polls.fetch_add(1, Relaxed);
        self.handles().slow_polls.increment(1);
    }

    pub(crate) fn record_stuck_poll(&'static self, stack: Option<Stack>) {
        self.stats.stuck_polls.fetch_add(1, Relaxed);
        self.handles().stuck_polls.increment(1);
        if stack.is_some() {
            *self
                .stats
                .last_stack
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = stack;
        }
    }

    pub(crate) fn record_timeout(&'static self) {
        self.stats.timeouts.fetch_add(1, Relaxed);
        self.handles().timeouts.increment(1);
    }

    /// Where this route's calls run now.
    pub(crate) fn mode(&self) -> RouteMode {
        if self.stats.quarantine.state.load(Relaxed) == RouteMode::Quarantined as u8 {
            RouteMode::Quarantined
        } else {
            RouteMode::EventLoop
        }
    }

    pub(crate) fn set_mode(&'static self, mode: RouteMode) {
        let quarantine = &self.stats.quarantine;
        quarantine.state.store(mode as u8, Relaxed);
        if mode == RouteMode::Quarantined {
            quarantine.entered.fetch_add(1, Relaxed);
        }
        describe_once();
        metrics::gauge!("lanes_route_quarantined", "route" => self.name).set(match mode {
            RouteMode::EventLoop => 0.0,
            RouteMode::Quarantined => 1.0,
        });
    }

    pub(crate) fn record_quarantined_call(&'static self) {
        self.stats.quarantine.calls.fetch_add(1, Relaxed);
    }

    pub(crate) fn record_probe(&'static self) {
        self.stats.quarantine.probes.fetch_add(1, Relaxed);
    }
}

/// A call waiting for its lane: counted as queued until it starts or is
/// dropped (shed, or its caller went away).
#[derive(Debug)]
pub(crate) struct Queued {
    site: &'static Site,
    /// A [`CLOCK`] reading.
    since: u64,
}

impl Queued {
    pub(crate) fn start(self) -> Running {
        let waited = CLOCK.delta(self.since, CLOCK.raw());
        let shard = self.site.stats.shard();
        shard.queue_wait.count(waited);
        // Out of the queue before the gauges are read.
        let site = self.site;
        drop(self);
        site.sample(shard, Sample::QueueWait, waited.as_secs_f64());
        Running::begin(site)
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.site.stats.shard().left_queue.fetch_add(1, Relaxed);
    }
}

/// A running call: counted as in flight until dropped, then as completed,
/// and as a panic when it ends by one.
#[derive(Debug)]
pub(crate) struct Running {
    site: &'static Site,
    /// A [`CLOCK`] reading.
    since: u64,
    panicked: bool,
}

impl Running {
    fn begin(site: &'static Site) -> Running {
        site.handles();
        site.stats.shard().started.fetch_add(1, Relaxed);
        Running {
            site,
            since: CLOCK.raw(),
            panicked: false,
        }
    }

    /// For a panic that was caught before this guard could see it unwind.
    pub(crate) fn panicked(&mut self) {
        self.panicked = true;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let stats = &self.site.stats;
        let took = CLOCK.delta(self.since, CLOCK.raw());
        let shard = stats.shard();
        shard.run.count(took);
        // Ended before the gauges are read.
        shard.ended.fetch_add(1, Relaxed);
        self.site.sample(shard, Sample::Run, took.as_secs_f64());
        if self.panicked || std::thread::panicking() {
            stats.panics.fetch_add(1, Relaxed);
            self.site.handles().panics.increment(1);
        }
    }
}

impl Unrecorded {
    fn record(self, handles: &Handles) {
        for seconds in self.queue_wait {
            handles.queue_wait.record(seconds);
        }
        for seconds in self.run {
            handles.run.record(seconds);
        }
    }
}

/// Starts, once, the thread that flushes every listed site every
/// [`FLUSH_EVERY`].
fn start_flushing() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        let started = std::thread::Builder::new()
            .name("lanes-metrics".to_owned())
            .spawn(|| {
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    let sites = SITES.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    for site in sites {
                        site.flush();
                    }
                }
            });
        if let Err(error) = started {
            tracing::warn!(%error, "lanes: could not start the thread that flushes metrics; histograms are recorded as each shard fills");
        }
    });
}

fn describe_once() {
    static DESCRIBED: std::sync::Once = std::sync::Once::new();
    DESCRIBED.call_once(|| {
        use metrics::{describe_counter, describe_gauge, describe_histogram};
        describe_gauge!("lanes_calls_in_flight", "Lane fn calls running now.");
        describe_gauge!(
            "lanes_calls_queued",
            "Lane fn calls waiting for their lane."
        );
        describe_histogram!(
            "lanes_queue_wait_seconds",
            Unit::Seconds,
            "How long a call waited for its lane before it ran."
        );
        describe_histogram!("lanes_run_seconds", Unit::Seconds, "How long a call ran.");
        describe_counter!(
            "lanes_shed_total",
            "Calls shed with 503 after the lane's maximum wait."
        );
        describe_counter!("lanes_panics_total", "Calls that ended in a panic.");
        describe_counter!(
            "lanes_slow_polls_total",
            "Polls of an #[io_bound] fn longer than the slow-poll threshold."
        );
        describe_counter!(
            "lanes_stuck_polls_total",
            "Polls the watchdog caught holding a tokio worker past its threshold."
        );
        describe_counter!(
            "lanes_timeouts_total",
            "Lane fn calls that did not finish within their timeout."
        );
        describe_gauge!(
            "lanes_route_quarantined",
            "1 while a route caught blocking runs on blocking-pool threads, else 0."
        );
        describe_histogram!(
            "lanes_event_loop_lag_seconds",
            Unit::Seconds,
            "How late the lanes heartbeat task woke on the tokio runtime, each beat."
        );
        describe_counter!(
            "lanes_jobs_attempts_total",
            "Job attempts that ended, by outcome: succeeded, retried, dead, cancelled, released (given back at a shutdown) or lost (its lease ran out)."
        );
        describe_gauge!("lanes_jobs_running", "Job attempts running now.");
        describe_gauge!(
            "lanes_jobs_waiting",
            "Jobs of a queue waiting for a worker (queued, or failed and waiting for their retry), as last counted."
        );
        describe_histogram!(
            "lanes_jobs_wait_seconds",
            Unit::Seconds,
            "How long a job waited from due to claimed."
        );
        describe_histogram!(
            "lanes_jobs_run_seconds",
            Unit::Seconds,
            "How long a job attempt ran, including a body that ran past its timeout."
        );
    });
}

/// How a job attempt ended, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum JobOutcome {
    Succeeded,
    Retried,
    Dead,
    Cancelled,
    /// Given back unfinished at a shutdown.
    Released,
    /// Its lease ran out and another claim holds the job.
    Lost,
}

impl JobOutcome {
    const ALL: [JobOutcome; 6] = [
        JobOutcome::Succeeded,
        JobOutcome::Retried,
        JobOutcome::Dead,
        JobOutcome::Cancelled,
        JobOutcome::Released,
        JobOutcome::Lost,
    ];

    fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Succeeded => "succeeded",
            JobOutcome::Retried => "retried",
            JobOutcome::Dead => "dead",
            JobOutcome::Cancelled => "cancelled",
            JobOutcome::Released => "released",
            JobOutcome::Lost => "lost",
        }
    }
}

/// The counters of one job kind on one queue.
#[derive(Debug)]
pub(crate) struct JobFigures {
    kind: String,
    queue: String,
    running: AtomicU64,
    outcomes: [(AtomicU64, Counter); 6],
    running_gauge: Gauge,
    wait: (Timing, Histogram),
    run: (Timing, Histogram),
}

/// Every job kind and queue a worker of this process ran, for [`stats`].
static JOBS: Mutex<Vec<&'static JobFigures>> = Mutex::new(Vec::new());

/// The jobs waiting in each queue, as the workers last counted them.
static WAITING: Mutex<Vec<(String, u64, Gauge)>> = Mutex::new(Vec::new());

impl JobFigures {
    /// The figures of `kind` on `queue`, made on first use.
    pub(crate) fn of(kind: &str, queue: &str) -> &'static JobFigures {
        let mut jobs = JOBS.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(figures) = jobs.iter().find(|f| f.kind == kind && f.queue == queue) {
            return figures;
        }
        describe_once();
        let labels = [("kind", kind.to_owned()), ("queue", queue.to_owned())];
        let figures: &'static JobFigures = Box::leak(Box::new(JobFigures {
            kind: kind.to_owned(),
            queue: queue.to_owned(),
            running: AtomicU64::new(0),
            outcomes: JobOutcome::ALL.map(|outcome| {
                let mut labels = labels.to_vec();
                labels.push(("outcome", outcome.as_str().to_owned()));
                (
                    AtomicU64::new(0),
                    metrics::counter!("lanes_jobs_attempts_total", &labels),
                )
            }),
            running_gauge: metrics::gauge!("lanes_jobs_running", &labels),
            wait: (
                Timing::new(),
                metrics::histogram!("lanes_jobs_wait_seconds", &labels),
            ),
            run: (
                Timing::new(),
                metrics::histogram!("lanes_jobs_run_seconds", &labels),
            ),
        }));
        jobs.push(figures);
        figures
    }

    /// An attempt that starts after waiting `waited` since it was due.
    pub(crate) fn started(&'static self, waited: Duration) -> RunningJob {
        self.wait.0.record(waited, &self.wait.1);
        self.running.fetch_add(1, Relaxed);
        self.running_gauge.increment(1.0);
        RunningJob {
            figures: self,
            started: std::time::Instant::now(),
            outcome: JobOutcome::Lost,
        }
    }
}

/// A running attempt, counted until it drops, under the outcome last set.
#[derive(Debug)]
pub(crate) struct RunningJob {
    figures: &'static JobFigures,
    started: std::time::Instant,
    outcome: JobOutcome,
}

impl RunningJob {
    pub(crate) fn ended(&mut self, outcome: JobOutcome) {
        self.outcome = outcome;
    }
}

impl Drop for RunningJob {
    fn drop(&mut self) {
        let figures = self.figures;
        figures.running.fetch_sub(1, Relaxed);
        figures.running_gauge.decrement(1.0);
        let (count, counter) = &figures.outcomes[self.outcome as usize];
        count.fetch_add(1, Relaxed);
        counter.increment(1);
        figures.run.0.record(self.started.elapsed(), &figures.run.1);
    }
}

/// Records how many jobs of `queue` wait for a worker.
pub(crate) fn record_waiting(queue: &str, jobs: u64) {
    let mut waiting = WAITING.lock().unwrap_or_else(|e| e.into_inner());
    match waiting.iter_mut().find(|(name, ..)| name == queue) {
        Some((_, count, gauge)) => {
            *count = jobs;
            gauge.set(jobs as f64);
        }
        None => {
            describe_once();
            let gauge = metrics::gauge!("lanes_jobs_waiting", "queue" => queue.to_owned());
            gauge.set(jobs as f64);
            waiting.push((queue.to_owned(), jobs, gauge));
        }
    }
}

/// A snapshot of every lane and every lane fn called so far, for an
/// opt-in route. It answers as JSON:
///
/// ```
/// use axum::{Router, routing::get};
///
/// let app: Router = Router::new().route("/lanes/stats", get(|| async { lanes::stats() }));
/// ```
///
/// The same figures go through the `metrics` facade, to the recorder the
/// service installed (install it before serving: a handler takes its metric
/// handles on its first call):
///
/// | metric | kind | labels |
/// |---|---|---|
/// | `lanes_calls_in_flight` | gauge | `lane`, `handler` |
/// | `lanes_calls_queued` | gauge | `lane`, `handler` (blocking, CPU) |
/// | `lanes_queue_wait_seconds` | histogram | `lane`, `handler` (blocking, CPU) |
/// | `lanes_run_seconds` | histogram | `lane`, `handler` |
/// | `lanes_shed_total` | counter | `lane`, `handler` (blocking, CPU) |
/// | `lanes_panics_total` | counter | `lane`, `handler` |
/// | `lanes_slow_polls_total` | counter | `lane`, `handler` (I/O) |
/// | `lanes_stuck_polls_total` | counter | `lane`, `handler` (I/O) |
/// | `lanes_timeouts_total` | counter | `lane`, `handler` |
/// | `lanes_event_loop_lag_seconds` | histogram | |
/// | `lanes_route_quarantined` | gauge | `route` |
/// | `lanes_jobs_refused_total` | counter | `queue`, `reason` (`full`: a job store's bound) |
/// | `lanes_jobs_attempts_total` | counter | `kind`, `queue`, `outcome` |
/// | `lanes_jobs_running` | gauge | `kind`, `queue` |
/// | `lanes_jobs_waiting` | gauge | `queue` |
/// | `lanes_jobs_wait_seconds` | histogram | `kind`, `queue` |
/// | `lanes_jobs_run_seconds` | histogram | `kind`, `queue` |
///
/// Under [`Watch`](crate::Watch), each route has the same series with a
/// `route` label (`GET /users/{id}`) in place of `handler`.
///
/// The job figures are those of the workers running in this process.
pub fn stats() -> Stats {
    let running = lanes();
    let sites = SITES.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let (routes, fns): (Vec<&Site>, Vec<&Site>) = sites.iter().partition(|site| site.route);
    let handlers: Vec<HandlerStats> = fns.iter().map(|site| HandlerStats::of(site)).collect();
    let routes = routes.iter().map(|site| RouteStats::of(site)).collect();
    let lane = |lane: Lane, capacity: Option<(usize, usize)>| {
        let mine = handlers.iter().filter(|h| h.lane == lane);
        let mut totals = LaneStats {
            lane,
            capacity: capacity.map(|(bound, _)| bound),
            admitted: capacity.map(|(bound, free)| bound - free),
            in_flight: 0,
            queued: 0,
            completed: 0,
            shed: 0,
            panics: 0,
            slow_polls: 0,
            stuck_polls: 0,
        };
        for h in mine {
            totals.in_flight += h.in_flight;
            totals.queued += h.queued;
            totals.completed += h.completed;
            totals.shed += h.shed;
            totals.panics += h.panics;
            totals.slow_polls += h.slow_polls;
            totals.stuck_polls += h.stuck_polls;
        }
        totals
    };
    Stats {
        event_loop_lag_ms: crate::heartbeat::last_lag().as_secs_f64() * 1e3,
        lanes: vec![
            lane(Lane::IoBound, None),
            lane(
                Lane::Blocking,
                Some((running.blocking.bound(), running.blocking.free())),
            ),
            lane(
                Lane::CpuBound,
                Some((running.cpu_admission.bound(), running.cpu_admission.free())),
            ),
        ],
        handlers,
        routes,
        jobs: JOBS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|figures| JobStats::of(figures))
            .collect(),
        queues: WAITING
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(queue, waiting, _)| QueueStats {
                queue: queue.clone(),
                waiting: *waiting,
            })
            .collect(),
    }
}

/// What [`stats`] returns; serialized as JSON, and an axum response.
///
/// Every count is since the process started (or since the fn's first call)
/// and only grows, except the "now" figures (`in_flight`, `queued`,
/// `admitted`, `running`, `waiting`). Times are in milliseconds.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// How late the heartbeat task woke at its last beat, in milliseconds:
    /// it sleeps 20 ms at a time on the tokio runtime of the lane calls, and a
    /// worker held by a blocking call (or every worker busy) makes it late.
    /// tokio's timer adds up to about 1 ms to any wake; 0 until the first
    /// beat.
    pub event_loop_lag_ms: f64,
    /// The three lanes, I/O, blocking and CPU in that order (see
    /// [`Stats::lane`]): each one's bound and the totals of its fns.
    pub lanes: Vec<LaneStats>,
    /// Each lane fn called so far, in the order of first calls; closures
    /// run through [`run_blocking`](crate::run_blocking) and
    /// [`run_cpu`](crate::run_cpu) count as `lanes::run_blocking` and
    /// `lanes::run_cpu`.
    pub handlers: Vec<HandlerStats>,
    /// Each route [`Watch`](crate::Watch) has served.
    pub routes: Vec<RouteStats>,
    /// Each job kind and queue this process's workers ran.
    pub jobs: Vec<JobStats>,
    /// Each queue this process's workers take jobs from.
    pub queues: Vec<QueueStats>,
}

impl Stats {
    /// The figures of `lane`; every snapshot holds all three.
    pub fn lane(&self, lane: Lane) -> &LaneStats {
        self.lanes
            .iter()
            .find(|l| l.lane == lane)
            .expect("a snapshot holds every lane")
    }

    /// The figures of the job kind whose name ends with `kind`, on `queue`.
    pub fn job(&self, kind: &str, queue: &str) -> Option<&JobStats> {
        self.jobs.iter().find(|j| {
            j.queue == queue && (j.kind == kind || j.kind.ends_with(&format!("::{kind}")))
        })
    }

    /// The handler whose path ends with `name` (`"blur"`, `"app::blur"`).
    pub fn handler(&self, name: &str) -> Option<&HandlerStats> {
        self.handlers
            .iter()
            .find(|h| h.handler == name || h.handler.ends_with(&format!("::{name}")))
    }

    /// The route named `route`, method first (`"GET /users/{id}"`).
    pub fn route(&self, route: &str) -> Option<&RouteStats> {
        self.routes.iter().find(|r| r.route == route)
    }
}

impl axum::response::IntoResponse for Stats {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self).into_response()
    }
}

/// One lane: its admission bound, and the sums of its fns' figures (those
/// of [`HandlerStats`], which see).
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct LaneStats {
    /// Which lane.
    pub lane: Lane,
    /// The admission bound: [`Config::blocking_limit`] calls running on
    /// the blocking lane, [`Config::cpu_admission`] calls running or queued
    /// in the CPU pool. `None` on the I/O lane, which has no bound.
    ///
    /// [`Config::blocking_limit`]: crate::Config::blocking_limit
    /// [`Config::cpu_admission`]: crate::Config::cpu_admission
    pub capacity: Option<usize>,
    /// Places of that bound taken now; `None` on the I/O lane.
    pub admitted: Option<usize>,
    /// Calls running now.
    pub in_flight: u64,
    /// Calls waiting now for a place (always 0 on the I/O lane).
    pub queued: u64,
    /// Calls that have ended: returned, panicked, or dropped while running.
    pub completed: u64,
    /// Calls answered `503` after waiting past the lane's maximum wait.
    pub shed: u64,
    /// Calls that ended in a panic.
    pub panics: u64,
    /// Polls longer than [`Config::slow_poll_threshold`] (I/O lane only).
    ///
    /// [`Config::slow_poll_threshold`]: crate::Config::slow_poll_threshold
    pub slow_polls: u64,
    /// Polls the watchdog caught holding their worker past
    /// [`Config::watchdog_threshold`] (I/O lane only).
    ///
    /// [`Config::watchdog_threshold`]: crate::Config::watchdog_threshold
    pub stuck_polls: u64,
}

/// One lane fn (`#[io_bound]`, `#[blocking]` or `#[cpu_bound]`, or the
/// closures of [`run_blocking`](crate::run_blocking) and
/// [`run_cpu`](crate::run_cpu)), from its first call on.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct HandlerStats {
    /// The fn's path, `module::name`, as in the metrics' `handler` label.
    pub handler: &'static str,
    /// The lane it runs on.
    pub lane: Lane,
    /// Calls running now: an `#[io_bound]` call from its first poll to its
    /// end, a pool call while its body runs.
    pub in_flight: u64,
    /// Calls waiting now for their lane's bound or the fn's own `limit`
    /// (always 0 for `#[io_bound]`).
    pub queued: u64,
    /// Calls that have ended: returned, panicked, or dropped while running.
    pub completed: u64,
    /// Calls answered `503` after waiting past the lane's maximum wait
    /// (under [`ShedLayer`](crate::ShedLayer) or [`Watch`](crate::Watch)).
    pub shed: u64,
    /// Calls that ended in a panic.
    pub panics: u64,
    /// Polls longer than [`Config::slow_poll_threshold`] (`#[io_bound]`
    /// only).
    ///
    /// [`Config::slow_poll_threshold`]: crate::Config::slow_poll_threshold
    pub slow_polls: u64,
    /// Polls the watchdog caught holding their worker past
    /// [`Config::watchdog_threshold`] (`#[io_bound]` only).
    ///
    /// [`Config::watchdog_threshold`]: crate::Config::watchdog_threshold
    pub stuck_polls: u64,
    /// Calls that did not finish within their `timeout`.
    pub timeouts: u64,
    /// How long calls waited for their lane before they started (calls
    /// that never started are not in it).
    pub queue_wait: TimingStats,
    /// How long calls ran, to their end, however they ended.
    pub run: TimingStats,
    /// Where the watchdog last caught a poll of it stuck, outermost frame
    /// first; `None` if it never was, or off Linux (no stack is taken).
    pub last_stuck_stack: Option<Stack>,
}

impl SiteStats {
    fn last_stack(&self) -> Option<Stack> {
        self.last_stack
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// One route (method and matched path) under [`Watch`](crate::Watch).
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct RouteStats {
    /// The method and the matched path: `GET /users/{id}`.
    pub route: &'static str,
    /// Whether its calls run on the event loop or are quarantined now.
    pub mode: RouteMode,
    /// Requests being served now.
    pub in_flight: u64,
    /// Calls waiting for a place while the route is quarantined.
    pub queued: u64,
    /// Requests whose future has ended: answered, panicked, or dropped.
    pub completed: u64,
    /// Calls shed while they waited for a place.
    pub shed: u64,
    /// Requests whose future panicked.
    pub panics: u64,
    /// Polls longer than [`Config::slow_poll_threshold`].
    ///
    /// [`Config::slow_poll_threshold`]: crate::Config::slow_poll_threshold
    pub slow_polls: u64,
    /// Polls the watchdog caught holding their worker past
    /// [`Config::watchdog_threshold`].
    ///
    /// [`Config::watchdog_threshold`]: crate::Config::watchdog_threshold
    pub stuck_polls: u64,
    /// Requests answered `504` because a lane call in them timed out.
    pub timeouts: u64,
    /// Times the route was quarantined.
    pub quarantines: u64,
    /// Calls run on blocking-pool threads while it was quarantined.
    pub quarantined_calls: u64,
    /// Calls run on the event loop to see whether it still blocks.
    pub probes: u64,
    /// How long quarantined calls waited for a place.
    pub queue_wait: TimingStats,
    /// How long requests took, from the first poll to the end.
    pub run: TimingStats,
    /// Where the watchdog last caught a poll of it stuck.
    pub last_stuck_stack: Option<Stack>,
}

impl RouteStats {
    fn of(site: &Site) -> RouteStats {
        let s = &site.stats;
        RouteStats {
            route: site.name,
            mode: site.mode(),
            in_flight: s.in_flight(),
            queued: s.queued(),
            completed: s.completed(),
            shed: s.shed.load(Relaxed),
            panics: s.panics.load(Relaxed),
            slow_polls: s.slow_polls.load(Relaxed),
            stuck_polls: s.stuck_polls.load(Relaxed),
            timeouts: s.timeouts.load(Relaxed),
            quarantines: s.quarantine.entered.load(Relaxed),
            quarantined_calls: s.quarantine.calls.load(Relaxed),
            probes: s.quarantine.probes.load(Relaxed),
            queue_wait: s.queue_wait(),
            run: s.run(),
            last_stuck_stack: s.last_stack(),
        }
    }
}

impl HandlerStats {
    fn of(site: &Site) -> HandlerStats {
        let s = &site.stats;
        HandlerStats {
            handler: site.name,
            lane: site.lane,
            in_flight: s.in_flight(),
            queued: s.queued(),
            completed: s.completed(),
            shed: s.shed.load(Relaxed),
            panics: s.panics.load(Relaxed),
            slow_polls: s.slow_polls.load(Relaxed),
            stuck_polls: s.stuck_polls.load(Relaxed),
            timeouts: s.timeouts.load(Relaxed),
            queue_wait: s.queue_wait(),
            run: s.run(),
            last_stuck_stack: s.last_stack(),
        }
    }
}

/// The attempts of one job kind on one queue, run by this process's workers.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct JobStats {
    /// The job kind's name (`module::fn` unless `#[background(kind = ..)]`
    /// names it).
    pub kind: String,
    /// The queue its jobs were taken from.
    pub queue: String,
    /// Attempts running now.
    pub running: u64,
    /// Attempts that ended the job with its result.
    pub succeeded: u64,
    /// Attempts that failed and will run again.
    pub retried: u64,
    /// Attempts that failed with none left: the job is dead.
    pub dead: u64,
    /// Attempts stopped because the job was cancelled.
    pub cancelled: u64,
    /// Attempts given back unfinished at a shutdown.
    pub released: u64,
    /// Attempts whose lease ran out while they ran.
    pub lost: u64,
    /// How long jobs waited from due (enqueued, or their retry or
    /// `run_at` time) to claimed.
    pub wait: TimingStats,
    /// How long attempts ran, including a sync body that ran past its
    /// timeout.
    pub run: TimingStats,
}

impl JobStats {
    fn of(figures: &JobFigures) -> JobStats {
        let count = |outcome: JobOutcome| figures.outcomes[outcome as usize].0.load(Relaxed);
        JobStats {
            kind: figures.kind.clone(),
            queue: figures.queue.clone(),
            running: figures.running.load(Relaxed),
            succeeded: count(JobOutcome::Succeeded),
            retried: count(JobOutcome::Retried),
            dead: count(JobOutcome::Dead),
            cancelled: count(JobOutcome::Cancelled),
            released: count(JobOutcome::Released),
            lost: count(JobOutcome::Lost),
            wait: figures.wait.0.snapshot(),
            run: figures.run.0.snapshot(),
        }
    }
}

/// A queue's waiting jobs, as this process's workers last counted them.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct QueueStats {
    /// The queue's name.
    pub queue: String,
    /// Queued, or failed and waiting for their retry.
    pub waiting: u64,
}

/// A duration measured many times: how many, their mean and the longest.
#[derive(Clone, Copy, Debug, Serialize)]
#[non_exhaustive]
pub struct TimingStats {
    /// How many were measured.
    pub count: u64,
    /// Their mean, in milliseconds; 0 when none was.
    pub mean_ms: f64,
    /// The median, in milliseconds, within 19% (samples are counted in
    /// buckets half an octave wide); 0 when none was.
    pub p50_ms: f64,
    /// The 99th percentile, in milliseconds, within 19%.
    pub p99_ms: f64,
    /// The longest, in milliseconds; 0 when none was.
    pub max_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_fall_within_a_fifth_of_the_samples() {
        let timing = Timing::new();
        for _ in 0..98 {
            timing.count(Duration::from_millis(1));
        }
        for _ in 0..2 {
            timing.count(Duration::from_millis(100));
        }
        let stats = timing.snapshot();
        assert_eq!(stats.count, 100);
        assert!((stats.p50_ms - 1.0).abs() <= 0.19, "{stats:?}");
        assert!((stats.p99_ms - 100.0).abs() <= 19.0, "{stats:?}");
        assert_eq!(stats.max_ms, 100.0);
        assert_eq!(Timing::new().snapshot().p99_ms, 0.0);
    }

    #[test]
    fn each_bucket_begins_where_the_last_ends() {
        for micros in [1u64, 2, 3, 5, 1_000, 1_499, 1_500, 65_535] {
            let index = bucket(micros * 1_000);
            let (start, end) = (bucket_start_ms(index), bucket_start_ms(index + 1));
            let ms = micros as f64 / 1e3;
            assert!(start <= ms && ms < end, "{micros} µs in [{start}, {end})");
        }
        assert_eq!(bucket(999), 0);
    }
}
