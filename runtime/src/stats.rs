//! Per-handler counters: kept in atomics for [`stats`], and sent through the
//! `metrics` facade for whatever recorder the service installed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Unit};
use serde::Serialize;

use crate::clock::CLOCK;
use crate::config::lanes;
use crate::lane::{Lane, Site};

/// The counters of one lane fn.
#[derive(Debug)]
pub(crate) struct SiteStats {
    registered: AtomicBool,
    handles: OnceLock<Handles>,
    in_flight: AtomicU64,
    queued: AtomicU64,
    shed: AtomicU64,
    panics: AtomicU64,
    slow_polls: AtomicU64,
    stuck_polls: AtomicU64,
    queue_wait: Timing,
    run: Timing,
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
}

#[derive(Debug)]
struct Timing {
    count: AtomicU64,
    total_nanos: AtomicU64,
    max_nanos: AtomicU64,
}

impl Timing {
    const fn new() -> Timing {
        Timing {
            count: AtomicU64::new(0),
            total_nanos: AtomicU64::new(0),
            max_nanos: AtomicU64::new(0),
        }
    }

    fn record(&self, took: Duration, histogram: &Histogram) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.count.fetch_add(1, Relaxed);
        self.total_nanos.fetch_add(nanos, Relaxed);
        self.max_nanos.fetch_max(nanos, Relaxed);
        histogram.record(took.as_secs_f64());
    }

    fn snapshot(&self) -> TimingStats {
        let count = self.count.load(Relaxed);
        let total = self.total_nanos.load(Relaxed);
        TimingStats {
            count,
            mean_ms: if count == 0 {
                0.0
            } else {
                total as f64 / count as f64 / 1e6
            },
            max_ms: self.max_nanos.load(Relaxed) as f64 / 1e6,
        }
    }
}

impl SiteStats {
    pub(crate) const fn new() -> SiteStats {
        SiteStats {
            registered: AtomicBool::new(false),
            handles: OnceLock::new(),
            in_flight: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            shed: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            slow_polls: AtomicU64::new(0),
            stuck_polls: AtomicU64::new(0),
            queue_wait: Timing::new(),
            run: Timing::new(),
        }
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
            let labels = [("lane", self.lane.as_str()), ("handler", self.name)];
            // Each lane exports the series that can move on it.
            let offloaded = self.lane != Lane::IoBound;
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
            Handles {
                in_flight: gauge("lanes_calls_in_flight", true),
                queued: gauge("lanes_calls_queued", offloaded),
                queue_wait: histogram("lanes_queue_wait_seconds", offloaded),
                run: histogram("lanes_run_seconds", true),
                shed: counter("lanes_shed_total", offloaded),
                panics: counter("lanes_panics_total", true),
                slow_polls: counter("lanes_slow_polls_total", !offloaded),
                stuck_polls: counter("lanes_stuck_polls_total", !offloaded),
            }
        })
    }

    /// A call that waits for its lane; the wait ends with [`Queued::start`].
    pub(crate) fn queue(&'static self) -> Queued {
        let handles = self.handles();
        // Gauges are set from the exact counters: one store instead of a
        // compare-and-swap loop; racing calls may leave a gauge one update
        // behind until the next.
        let queued = self.stats.queued.fetch_add(1, Relaxed) + 1;
        handles.queued.set(queued as f64);
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

    pub(crate) fn record_stuck_poll(&'static self) {
        self.stats.stuck_polls.fetch_add(1, Relaxed);
        self.handles().stuck_polls.increment(1);
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
        let handles = self.site.handles();
        let waited = CLOCK.delta(self.since, CLOCK.raw());
        self.site
            .stats
            .queue_wait
            .record(waited, &handles.queue_wait);
        // Dropping `self` leaves the queue.
        Running::begin(self.site)
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        let queued = self.site.stats.queued.fetch_sub(1, Relaxed) - 1;
        self.site.handles().queued.set(queued as f64);
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
        let in_flight = site.stats.in_flight.fetch_add(1, Relaxed) + 1;
        site.handles().in_flight.set(in_flight as f64);
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
        let handles = self.site.handles();
        let in_flight = stats.in_flight.fetch_sub(1, Relaxed) - 1;
        handles.in_flight.set(in_flight as f64);
        stats
            .run
            .record(CLOCK.delta(self.since, CLOCK.raw()), &handles.run);
        if self.panicked || std::thread::panicking() {
            stats.panics.fetch_add(1, Relaxed);
            handles.panics.increment(1);
        }
    }
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
        describe_gauge!(
            "lanes_event_loop_lag_seconds",
            Unit::Seconds,
            "How late the lanes heartbeat task woke on the tokio runtime, last beat."
        );
    });
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
/// | `lanes_event_loop_lag_seconds` | gauge | |
/// | `lanes_jobs_refused_total` | counter | `queue`, `reason` (`full`: a job store's bound) |
pub fn stats() -> Stats {
    let running = lanes();
    let sites = SITES.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let handlers: Vec<HandlerStats> = sites.iter().map(|site| HandlerStats::of(site)).collect();
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
                Some((running.blocking_limit, running.blocking.available_permits())),
            ),
            lane(
                Lane::CpuBound,
                Some((
                    running.cpu_admission_bound,
                    running.cpu_admission.available_permits(),
                )),
            ),
        ],
        handlers,
    }
}

/// What [`stats`] returns; serialized as JSON, and an axum response.
#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct Stats {
    /// How late the heartbeat task woke at its last beat.
    pub event_loop_lag_ms: f64,
    pub lanes: Vec<LaneStats>,
    pub handlers: Vec<HandlerStats>,
}

impl Stats {
    pub fn lane(&self, lane: Lane) -> &LaneStats {
        self.lanes
            .iter()
            .find(|l| l.lane == lane)
            .expect("a snapshot holds every lane")
    }

    /// The handler whose path ends with `name` (`"blur"`, `"app::blur"`).
    pub fn handler(&self, name: &str) -> Option<&HandlerStats> {
        self.handlers
            .iter()
            .find(|h| h.handler == name || h.handler.ends_with(&format!("::{name}")))
    }
}

impl axum::response::IntoResponse for Stats {
    fn into_response(self) -> axum::response::Response {
        axum::Json(self).into_response()
    }
}

#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct LaneStats {
    pub lane: Lane,
    /// The admission bound, for the lanes that have one.
    pub capacity: Option<usize>,
    /// Calls holding a place within the bound now.
    pub admitted: Option<usize>,
    pub in_flight: u64,
    pub queued: u64,
    pub completed: u64,
    pub shed: u64,
    pub panics: u64,
    pub slow_polls: u64,
    pub stuck_polls: u64,
}

#[derive(Clone, Debug, Serialize)]
#[non_exhaustive]
pub struct HandlerStats {
    /// The fn's path, `module::name`.
    pub handler: &'static str,
    pub lane: Lane,
    pub in_flight: u64,
    pub queued: u64,
    pub completed: u64,
    pub shed: u64,
    pub panics: u64,
    pub slow_polls: u64,
    pub stuck_polls: u64,
    pub queue_wait: TimingStats,
    pub run: TimingStats,
}

impl HandlerStats {
    fn of(site: &Site) -> HandlerStats {
        let s = &site.stats;
        HandlerStats {
            handler: site.name,
            lane: site.lane,
            in_flight: s.in_flight.load(Relaxed),
            queued: s.queued.load(Relaxed),
            completed: s.run.count.load(Relaxed),
            shed: s.shed.load(Relaxed),
            panics: s.panics.load(Relaxed),
            slow_polls: s.slow_polls.load(Relaxed),
            stuck_polls: s.stuck_polls.load(Relaxed),
            queue_wait: s.queue_wait.snapshot(),
            run: s.run.snapshot(),
        }
    }
}

#[derive(Clone, Copy, Debug, Serialize)]
#[non_exhaustive]
pub struct TimingStats {
    pub count: u64,
    pub mean_ms: f64,
    pub max_ms: f64,
}
