//! The `watch` scenario: what `lanes::Watch` costs (per poll, per call, and
//! in `/health` answers per second), and what it buys: `/health` while 50
//! clients hit a route that blocks 150 ms inside async code, with the
//! quarantine off and on, each in a child process of its own (the setting
//! is per process), where the watchdog's reports also give the cost of
//! taking and symbolizing a stack.

use std::fmt::Write as _;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::http::Request;
use axum::response::Response;
use axum::routing::get;
use tower_layer::Layer;
use tower_service::Service;
use tracing_subscriber::layer::SubscriberExt;

use crate::{Server, child_figures, client_runtime, load, median, ms, targets};

/// The environment variable that makes this bench a child serving the
/// stalling route with the quarantine `off` or `on`.
pub(crate) const STALL_CHILD: &str = "LANES_BENCH_QUARANTINE";
const STALL_CLIENTS: usize = 50;
const STALL: Duration = Duration::from_millis(150);
/// Load before the probe starts, so that the quarantine has caught the route.
const WARM_UP: Duration = Duration::from_secs(1);
const PROBE_LENGTH: Duration = Duration::from_secs(5);
const PROBE_PAUSE: Duration = Duration::from_millis(5);

async fn health() -> &'static str {
    "ok"
}

/// A vendor call that blocks inside async code, as the showcase's does.
async fn stall() -> &'static str {
    std::thread::sleep(STALL);
    "rates"
}

fn stalling_app() -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/stall", get(stall))
        .layer(lanes::Watch::new())
}

/// `/health` bare, and `/watched/health` the same handler under the layer,
/// on one server.
fn health_app() -> Router {
    let watched = Router::new()
        .route("/watched/health", get(health))
        .layer(lanes::Watch::new());
    Router::new().route("/health", get(health)).merge(watched)
}

/// The `stack_ms` of every watchdog report, in order.
#[derive(Clone, Default)]
struct StackCosts(Arc<Mutex<Vec<f64>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for StackCosts {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Field(Option<f64>);
        impl tracing::field::Visit for Field {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                if field.name() == "stack_ms" {
                    self.0 = format!("{value:?}").parse().ok();
                }
            }
        }
        let mut field = Field(None);
        event.record(&mut field);
        if let Some(took) = field.0 {
            self.0.lock().unwrap().push(took);
        }
    }
}

/// The child's side of the stalling-route scenario: prints `/health`'s p50,
/// p99 and max in µs, the probes, the stalling route's answers, and the
/// first and median `stack_ms` of the watchdog's reports (0 when none).
pub(crate) fn stall_child(quarantine: &str) {
    let costs = StackCosts::default();
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(costs.clone()))
        .expect("the child's first subscriber");
    let policy = (quarantine == "on").then(lanes::Quarantine::new);
    lanes::Config::new()
        .quarantine(policy)
        .install()
        .expect("the child configures the lanes first");
    let server = Server::serving(stalling_app);
    let addr = server.addr;
    let load = std::thread::spawn(move || {
        client_runtime(1).block_on(load::closed_loop(
            addr,
            "/stall",
            STALL_CLIENTS,
            WARM_UP + PROBE_LENGTH,
        ))
    });
    std::thread::sleep(WARM_UP);
    let mut latencies =
        client_runtime(1).block_on(load::probe(addr, "/health", PROBE_PAUSE, PROBE_LENGTH));
    let answers = load.join().expect("the load ends");
    let costs = costs.0.lock().unwrap().clone();
    let first = costs.first().copied().unwrap_or(0.0);
    let rest = if costs.len() > 1 {
        median(costs[1..].to_vec())
    } else {
        0.0
    };
    println!(
        "{} {} {} {} {} {first} {rest} {}",
        load::quantile(&mut latencies, 0.50).as_micros(),
        load::quantile(&mut latencies, 0.99).as_micros(),
        load::quantile(&mut latencies, 1.0).as_micros(),
        latencies.len(),
        answers,
        costs.len(),
    );
}

/// One child's figures.
struct Stalled {
    p50: Duration,
    p99: Duration,
    max: Duration,
    probes: f64,
    answers: f64,
    first_stack_ms: f64,
    stack_ms: f64,
    reports: f64,
}

fn stalled(quarantine: &str) -> Stalled {
    let f = child_figures(STALL_CHILD, quarantine);
    let micros = |v: f64| Duration::from_micros(v as u64);
    Stalled {
        p50: micros(f[0]),
        p99: micros(f[1]),
        max: micros(f[2]),
        probes: f[3],
        answers: f[4],
        first_stack_ms: f[5],
        stack_ms: f[6],
        reports: f[7],
    }
}

/// Wakes itself and returns `Pending`, `left` times, then answers.
struct Yields {
    left: u32,
}

impl Future for Yields {
    type Output = Result<Response, std::convert::Infallible>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if self.left == 0 {
            return Poll::Ready(Ok(Response::new(Body::empty())));
        }
        self.left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A service whose every call polls `polls` times.
#[derive(Clone, Copy)]
struct Polls(u32);

impl Service<Request<Body>> for Polls {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = Yields;
    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }
    fn call(&mut self, _: Request<Body>) -> Yields {
        Yields { left: self.0 }
    }
}

/// Nanoseconds per call of `calls` calls through `service`, each polled to
/// its end on this thread.
fn per_call<S>(mut service: S, calls: u32) -> f64
where
    S: Service<Request<Body>, Response = Response>,
{
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let start = Instant::now();
    for _ in 0..calls {
        let future = service.call(Request::new(Body::empty()));
        let mut future = std::pin::pin!(future);
        while future.as_mut().poll(&mut cx).is_pending() {}
    }
    start.elapsed().as_nanos() as f64 / f64::from(calls)
}

pub(crate) fn watch(report: &mut String) {
    const ROUNDS: usize = 5;
    const CALLS: u32 = 200_000;
    const POLLS: u32 = 100;
    // The layer's cost, by a call of one poll and a call of a hundred.
    let mut rounds = Vec::new();
    for _ in 0..ROUNDS {
        let bare_one = per_call(Polls(0), CALLS);
        let watched_one = per_call(lanes::Watch::new().layer(Polls(0)), CALLS);
        let bare_many = per_call(Polls(POLLS), CALLS / 10);
        let watched_many = per_call(lanes::Watch::new().layer(Polls(POLLS)), CALLS / 10);
        rounds.push([bare_one, watched_one, bare_many, watched_many]);
    }
    let column = |i: usize| median(rounds.iter().map(|r| black_box(r[i])).collect());
    let (bare_one, watched_one, bare_many, watched_many) =
        (column(0), column(1), column(2), column(3));
    let per_call_cost = watched_one - bare_one;
    let per_poll_cost = ((watched_many - bare_many) - per_call_cost) / f64::from(POLLS);

    // `/health` answers per second, with and without the layer.
    let server = Server::serving(health_app);
    let [bare, watched] = client_runtime(1).block_on(load::alternating(
        server.addr,
        ["/health", "/watched/health"],
        16,
        Duration::from_secs(10),
    ));
    drop(server);
    let mean = |l: &[Duration]| l.iter().sum::<Duration>() / l.len() as u32;
    let answers_ratio = mean(&bare).as_secs_f64() / mean(&watched).as_secs_f64();

    // The stalling route, quarantine off and on, rounds alternating.
    let mut off = Vec::new();
    let mut on = Vec::new();
    for _ in 0..3 {
        off.push(stalled("off"));
        on.push(stalled("on"));
    }
    let med = |runs: &[Stalled], f: fn(&Stalled) -> f64| median(runs.iter().map(f).collect());

    writeln!(
        report,
        "## `lanes::Watch`: its cost, and a stalling route contained\n"
    )
    .unwrap();
    writeln!(
        report,
        "**The layer's cost.** A service whose calls poll once, and one whose calls poll {POLLS} \
         times (waking themselves), called {CALLS} and {} times on one thread, bare and under \
         `Watch` with the defaults (10 ms slow-poll timer, watchdog, per-route counters, a \
         Prometheus recorder installed); median of {ROUNDS} interleaved rounds. A call pays for \
         the route's lookup and its request scope once; each poll pays for its timing.\n",
        CALLS / 10
    )
    .unwrap();
    writeln!(report, "| | bare | under `Watch` |\n|---|---|---|").unwrap();
    writeln!(
        report,
        "| a call of 1 poll | {bare_one:.0} ns | {watched_one:.0} ns |"
    )
    .unwrap();
    writeln!(
        report,
        "| a call of {POLLS} polls | {bare_many:.0} ns | {watched_many:.0} ns |"
    )
    .unwrap();
    writeln!(
        report,
        "\nPer call: {per_call_cost:.0} ns; per poll beyond the first: {per_poll_cost:.1} ns.\n"
    )
    .unwrap();
    writeln!(
        report,
        "**`/health` answers/s.** One server, `/health` bare and `/watched/health` (the same \
         handler under `Watch`), 16 closed-loop clients for 10 s alternating request by request: \
         {} and {} requests, mean latency {} and {}.\n",
        bare.len(),
        watched.len(),
        ms(mean(&bare)),
        ms(mean(&watched)),
    )
    .unwrap();
    writeln!(
        report,
        "**A stalling route.** A server of {} tokio workers under `Watch`: `/stall` is an `async \
         fn` that calls `std::thread::sleep({} ms)`, hit by {STALL_CLIENTS} closed-loop clients; \
         after {} s of that load, one probe connection GETs `/health` every {} ms for {} s. Each \
         setting in a child process of its own, 3 rounds alternating, medians. The quarantine is \
         `lanes::Quarantine::new()`: 3 slow calls within 60 s, then at most 32 at once on \
         blocking-pool threads, a probe every 10 s.\n",
        crate::SERVER_WORKERS,
        STALL.as_millis(),
        WARM_UP.as_secs(),
        PROBE_PAUSE.as_millis(),
        PROBE_LENGTH.as_secs(),
    )
    .unwrap();
    writeln!(
        report,
        "| quarantine | `/health` probes | p50 | p99 | max | `/stall` answers |\n|---|---|---|---|---|---|"
    )
    .unwrap();
    for (name, runs) in [("off", &off), ("on", &on)] {
        let micros = |f: fn(&Stalled) -> f64| Duration::from_secs_f64(med(runs, f) / 1e6);
        writeln!(
            report,
            "| {name} | {:.0} | {} | {} | {} | {:.0} |",
            med(runs, |s| s.probes),
            ms(micros(|s| s.p50.as_micros() as f64)),
            ms(micros(|s| s.p99.as_micros() as f64)),
            ms(micros(|s| s.max.as_micros() as f64)),
            med(runs, |s| s.answers),
        )
        .unwrap();
    }
    let first_stack = med(&off, |s| s.first_stack_ms);
    let stack = med(&off, |s| s.stack_ms);
    writeln!(
        report,
        "\n**Taking a stack.** With the quarantine off, the watchdog reported {:.0} stuck polls \
         per run (median), each with its stack; taking the frames and symbolizing them cost \
         {first_stack:.1} ms for the first report of a process (which reads the binary's debug \
         info: `debug = \"limited\"` in this workspace's release profile) and \
         {stack:.2} ms (median) for the others. While nothing is stuck the watchdog only reads \
         each worker's slot every 25 ms, and no signal is sent.\n",
        med(&off, |s| s.reports),
    )
    .unwrap();
    let on_p99 = Duration::from_secs_f64(med(&on, |s| s.p99.as_micros() as f64) / 1e6);
    targets(
        report,
        &[
            (
                "layer under 30 ns per poll",
                format!("{per_poll_cost:.1} ns"),
                per_poll_cost < 30.0,
            ),
            (
                "`/health` answers/s under the layer at least 97% of without",
                format!("{:.1}%", answers_ratio * 100.0),
                answers_ratio >= 0.97,
            ),
            (
                "`/health` p99 under 10 ms with the quarantine on",
                ms(on_p99),
                on_p99 < Duration::from_millis(10),
            ),
            (
                "a stack taken and symbolized under 5 ms (after the first)",
                format!("{stack:.2} ms"),
                stack < 5.0,
            ),
        ],
    );
}
