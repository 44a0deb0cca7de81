//! The seed scenarios, naive vs hand-written vs lanes, measured side by side
//! in one run: `cargo bench -p lanes-benches` rewrites `benches/RESULTS.md`
//! and the isolation scenario's chart, `benches/health-under-cpu-load.svg`;
//! `cargo bench -p lanes-benches -- burst isolation` runs some scenarios and
//! prints their tables (the chart is rewritten all the same).
//!
//! Each server runs on its own 2-worker tokio runtime and thread, like a
//! service on our 2-core machines; the load comes from other threads of this
//! process over 127.0.0.1.

mod compile;
mod dashboard;
mod load;
mod operations;
mod peers;
mod real_code;
mod watch;

use std::fmt::Write as _;
use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use futures::StreamExt;

const SERVER_WORKERS: usize = 2;

// ---------------------------------------------------------------- the routes

async fn health_plain() -> &'static str {
    "ok"
}

#[lanes::io_bound]
async fn health() -> &'static str {
    "ok"
}

/// The naive handler: blocks its tokio worker for 100 ms.
async fn sleep_inline() -> &'static str {
    std::thread::sleep(Duration::from_millis(100));
    "slept"
}

/// The hand-written fix: the same body sent to tokio's blocking pool.
async fn sleep_spawn_blocking() -> &'static str {
    tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_millis(100)))
        .await
        .expect("the sleep does not panic");
    "slept"
}

#[lanes::blocking]
fn sleep_lanes() -> &'static str {
    std::thread::sleep(Duration::from_millis(100));
    "slept"
}

/// Iterations of [`cpu_work`] that take about 20 ms here; set by [`calibrate`].
static WORK_ITERATIONS: AtomicU64 = AtomicU64::new(0);

fn cpu_work() -> String {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in 0..WORK_ITERATIONS.load(Ordering::Relaxed) {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i);
        x ^= x >> 29;
    }
    black_box(x).to_string()
}

async fn cpu_inline() -> String {
    cpu_work()
}

async fn cpu_spawn_blocking() -> String {
    tokio::task::spawn_blocking(cpu_work)
        .await
        .expect("the CPU work does not panic")
}

#[lanes::cpu_bound]
fn cpu_lanes() -> String {
    cpu_work()
}

fn app() -> Router {
    Router::new()
        .route("/health-plain", get(health_plain))
        .route("/health", get(health))
        .route("/sleep/inline", get(sleep_inline))
        .route("/sleep/spawn-blocking", get(sleep_spawn_blocking))
        .route("/sleep/lanes", get(sleep_lanes))
        .route("/cpu/inline", get(cpu_inline))
        .route("/cpu/spawn-blocking", get(cpu_spawn_blocking))
        .route("/cpu/lanes", get(cpu_lanes))
}

/// Sets [`WORK_ITERATIONS`] so that [`cpu_work`] takes about `target`.
fn calibrate(target: Duration) {
    const PROBE: u64 = 2_000_000;
    WORK_ITERATIONS.store(PROBE, Ordering::Relaxed);
    let fastest = (0..5)
        .map(|_| {
            let start = Instant::now();
            cpu_work();
            start.elapsed()
        })
        .min()
        .expect("five runs");
    let iterations = (PROBE as f64 * target.as_secs_f64() / fastest.as_secs_f64()) as u64;
    WORK_ITERATIONS.store(iterations, Ordering::Relaxed);
}

// ---------------------------------------------------------------- the server

/// [`app`] served on 127.0.0.1 by its own runtime on its own thread, until
/// dropped.
struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start() -> Server {
        Server::serving(app)
    }

    /// A server of the router `app` makes, on its own runtime.
    fn serving(app: fn() -> Router) -> Server {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(SERVER_WORKERS)
                .enable_all()
                .build()
                .expect("a server runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("a loopback port");
                addr_tx
                    .send(listener.local_addr().expect("a bound address"))
                    .expect("the bench waits");
                tokio::select! {
                    served = axum::serve(listener, app()) => served.expect("the server runs"),
                    _ = stopped => {}
                }
            });
            // Handlers still blocking (the naive ones) are not waited for.
            runtime.shutdown_timeout(Duration::from_secs(1));
        });
        let addr = addr_rx.recv().expect("the server reports its address");
        Server {
            addr,
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().expect("the server thread ends cleanly");
        }
    }
}

/// A client runtime on threads of its own.
fn client_runtime(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("a client runtime")
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "**not met**" }
}

/// A table of targets: what was aimed at, what was measured, and whether it
/// was met.
fn targets(report: &mut String, rows: &[(&str, String, bool)]) {
    writeln!(report, "\n| target | measured | |\n|---|---|---|").unwrap();
    for (target, measured, met) in rows {
        writeln!(report, "| {target} | {measured} | {} |", verdict(*met)).unwrap();
    }
    writeln!(report).unwrap();
}

// ---------------------------------------------------------------- scenarios

/// 10 and 100 concurrent requests to a 100 ms blocking handler.
fn burst(report: &mut String) {
    const RUNS: usize = 3;
    let client = client_runtime(2);
    writeln!(
        report,
        "## Seed: a burst of requests to a handler that blocks for 100 ms\n"
    )
    .unwrap();
    writeln!(
        report,
        "All requests sent at once on open connections; time until the last answer, median of \
         {RUNS} runs. The inline handler is a plain `async fn` calling `std::thread::sleep`; the \
         hand-written one sends the sleep to `tokio::task::spawn_blocking`; the lanes handler is \
         the same body as a `#[blocking] fn`. Server: {SERVER_WORKERS} tokio workers.\n"
    )
    .unwrap();
    writeln!(report, "| concurrent requests | inline `async fn` | hand-written `spawn_blocking` | `#[blocking]` | inline / 100 ms | `#[blocking]` / 100 ms | target: `#[blocking]` within 15% of 100 ms |").unwrap();
    writeln!(report, "|---|---|---|---|---|---|---|").unwrap();
    for n in [10, 100] {
        let server = Server::start();
        let time = |path: &'static str| {
            let runs = (0..RUNS)
                .map(|_| {
                    client
                        .block_on(load::burst(server.addr, path, n))
                        .as_secs_f64()
                })
                .collect();
            Duration::from_secs_f64(median(runs))
        };
        let lanes = time("/sleep/lanes");
        let spawn_blocking = time("/sleep/spawn-blocking");
        let inline = time("/sleep/inline");
        let one = 0.1;
        writeln!(
            report,
            "| {n} | {} | {} | {} | {:.1}x | {:.2}x | {} |",
            ms(inline),
            ms(spawn_blocking),
            ms(lanes),
            inline.as_secs_f64() / one,
            lanes.as_secs_f64() / one,
            verdict(lanes.as_secs_f64() <= one * 1.15)
        )
        .unwrap();
    }
    writeln!(report).unwrap();
}

const LOAD_CLIENTS: usize = 8;
const ISOLATION_LENGTH: Duration = Duration::from_secs(5);
const PROBE_PAUSE: Duration = Duration::from_millis(5);

/// The `/health` probe's figures under one load.
struct Probed {
    probes: usize,
    p50: Duration,
    p99: Duration,
    max: Duration,
    /// The CPU route's answers per second (none when idle).
    answers: Option<f64>,
}

/// How long one probe connection waits for `/health` while `clients`
/// closed-loop clients hit `path` (none: idle), and how often the CPU
/// route answered.
fn probed(addr: SocketAddr, path: Option<&'static str>, clients: usize) -> Probed {
    // The probe has a thread of its own, so the load clients never delay it.
    let probing = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a probe runtime");
        runtime.block_on(load::probe(addr, "/health", PROBE_PAUSE, ISOLATION_LENGTH))
    });
    let answers = path.map(|path| {
        client_runtime(1).block_on(load::closed_loop(addr, path, clients, ISOLATION_LENGTH))
    });
    let mut latencies = probing.join().expect("the probe ends");
    Probed {
        probes: latencies.len(),
        p50: load::quantile(&mut latencies, 0.50),
        p99: load::quantile(&mut latencies, 0.99),
        max: load::quantile(&mut latencies, 1.0),
        answers: answers.map(|a| a as f64 / ISOLATION_LENGTH.as_secs_f64()),
    }
}

/// The CPU route under each strategy: (name in the tables, name in the
/// chart, path).
const CPU_STRATEGIES: [(&str, &str, &str); 3] = [
    ("inline `async fn`", "inline async fn", "/cpu/inline"),
    (
        "hand-written `spawn_blocking`",
        "hand-written spawn_blocking",
        "/cpu/spawn-blocking",
    ),
    ("`#[cpu_bound]`", "#[cpu_bound]", "/cpu/lanes"),
];

/// The CPU loads of the sweep, in closed-loop clients; the last is the
/// isolation table's.
const SWEEP: [usize; 3] = [2, 4, LOAD_CLIENTS];

/// Where the chart of `/health` p99 against CPU load goes.
const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/health-under-cpu-load.svg");

/// `/health` latency while clients load a 20 ms CPU route: 2, 4 and 8
/// clients, each strategy in turn at each load, so that a noisy moment hits
/// them alike; the table at 8 clients, and the chart of the sweep.
fn isolation(report: &mut String) {
    calibrate(Duration::from_millis(20));
    let server = Server::start();
    let idle = probed(server.addr, None, 0);
    let sweep: Vec<[Probed; 3]> = SWEEP
        .iter()
        .map(|&clients| CPU_STRATEGIES.map(|(_, _, path)| probed(server.addr, Some(path), clients)))
        .collect();
    writeln!(
        report,
        "## Isolation: `/health` while 8 clients load a 20 ms CPU route\n"
    )
    .unwrap();
    writeln!(
        report,
        "One probe connection GETs `/health` every {} ms for {} s on a thread of its own, while \
         {LOAD_CLIENTS} closed-loop clients hit the CPU route ({} iterations of a hash loop, \
         calibrated to 20 ms on one idle core). Server: {SERVER_WORKERS} tokio workers; \
         `#[cpu_bound]` runs on the CPU lane's default pool (one thread per core, 10 steps of \
         `nice` lower).\n",
        PROBE_PAUSE.as_millis(),
        ISOLATION_LENGTH.as_secs(),
        WORK_ITERATIONS.load(Ordering::Relaxed),
    )
    .unwrap();
    writeln!(
        report,
        "| CPU route on | /health probes | p50 | p99 | max | CPU route answers/s |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|---|---|").unwrap();
    let at_eight = sweep.last().expect("the sweep ran");
    let rows = std::iter::once(("idle (no load)", &idle))
        .chain(CPU_STRATEGIES.iter().map(|s| s.0).zip(at_eight));
    for (name, probe) in rows {
        let throughput = probe.answers.map_or("-".to_owned(), |t| format!("{t:.1}"));
        writeln!(
            report,
            "| {name} | {} | {} | {} | {} | {throughput} |",
            probe.probes,
            ms(probe.p50),
            ms(probe.p99),
            ms(probe.max)
        )
        .unwrap();
    }
    let [inline, spawn_blocking, lanes] = at_eight;
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    let lanes_throughput = lanes.answers.unwrap_or(0.0) / inline.answers.unwrap_or(f64::NAN);
    let lanes_vs_idle = ratio(lanes.p99, idle.p99);
    let lanes_vs_spawn_blocking = ratio(lanes.p99, spawn_blocking.p99);
    targets(
        report,
        &[
            (
                "`#[cpu_bound]` p99 at most 3x the idle p99",
                format!("{lanes_vs_idle:.1}x"),
                lanes_vs_idle <= 3.0,
            ),
            (
                "`#[cpu_bound]` p99 at most half of `spawn_blocking`'s",
                format!("{lanes_vs_spawn_blocking:.2}x"),
                lanes_vs_spawn_blocking <= 0.5,
            ),
            (
                "`#[cpu_bound]` CPU-route throughput at least 95% of inline",
                format!("{:.1}%", lanes_throughput * 100.0),
                lanes_throughput >= 0.95,
            ),
        ],
    );

    writeln!(report, "### `/health` p99 against CPU load\n").unwrap();
    writeln!(
        report,
        "The same probe at 0 (idle), 2, 4 and 8 clients on the CPU route, {} s a point; the chart \
         is [`health-under-cpu-load.svg`](health-under-cpu-load.svg).\n\n\
         ![/health p99 against CPU load](health-under-cpu-load.svg)\n",
        ISOLATION_LENGTH.as_secs()
    )
    .unwrap();
    writeln!(
        report,
        "| CPU clients | {} |\n|---|---|---|---|",
        CPU_STRATEGIES.map(|s| s.0).join(" | ")
    )
    .unwrap();
    let idle_p99 = ms(idle.p99);
    writeln!(report, "| 0 | {idle_p99} | {idle_p99} | {idle_p99} |").unwrap();
    for (clients, probes) in SWEEP.iter().zip(&sweep) {
        let p99s = probes.each_ref().map(|probe| ms(probe.p99));
        writeln!(report, "| {clients} | {} |", p99s.join(" | ")).unwrap();
    }
    writeln!(report).unwrap();
    let lines: Vec<(&str, Vec<(f64, f64)>)> = CPU_STRATEGIES
        .iter()
        .enumerate()
        .map(|(strategy, (_, name, _))| {
            let points = std::iter::once((0.0, idle.p99))
                .chain(
                    SWEEP
                        .iter()
                        .zip(&sweep)
                        .map(|(&c, p)| (c as f64, p[strategy].p99)),
                )
                .map(|(clients, p99)| (clients, p99.as_secs_f64() * 1e3))
                .collect();
            (*name, points)
        })
        .collect();
    chart(CHART, &lines).expect("the chart is written");
}

/// Draws `/health` p99 (ms, on a log scale) against the CPU clients, a
/// line for each strategy, as SVG.
fn chart(path: &str, lines: &[(&str, Vec<(f64, f64)>)]) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;

    let highest = lines
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .fold(1.0, f64::max);
    let lowest = lines
        .iter()
        .flat_map(|(_, points)| points.iter().map(|p| p.1))
        .fold(highest, f64::min);
    let root = SVGBackend::new(path, (760, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "/health p99 while clients load a 20 ms CPU route",
            ("sans-serif", 20),
        )
        .margin(20)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(
            -0.2f64..(LOAD_CLIENTS as f64 + 0.2),
            (lowest / 2.0..highest * 2.0).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("closed-loop clients on the CPU route")
        .y_desc("/health p99, ms (log scale)")
        .x_labels(LOAD_CLIENTS + 1)
        .x_label_formatter(&|clients| format!("{clients:.0}"))
        .draw()?;
    // Colours that stay apart for readers with red-green colour blindness.
    let colors = [
        RGBColor(213, 94, 0),
        RGBColor(0, 114, 178),
        RGBColor(0, 158, 115),
    ];
    for ((name, points), color) in lines.iter().zip(colors) {
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(
            points
                .iter()
                .map(|&point| Circle::new(point, 4, color.filled())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

/// The environment variable that makes this bench a child measuring
/// `/health` under `#[cpu_bound]` load with the CPU lane at that `nice`.
const PRIORITY_CHILD: &str = "LANES_BENCH_CPU_NICE";

/// The child's side of [`priority`]: prints `p50 p99 max probes` in µs.
fn priority_child(nice: i32) {
    lanes::Config::new()
        .cpu_nice(nice)
        .install()
        .expect("the child configures the lanes first");
    calibrate(Duration::from_millis(20));
    let server = Server::start();
    let probe = probed(server.addr, Some("/cpu/lanes"), LOAD_CLIENTS);
    println!(
        "{} {} {} {}",
        probe.p50.as_micros(),
        probe.p99.as_micros(),
        probe.max.as_micros(),
        probe.probes
    );
}

/// Runs this bench again as a child with `variable` set to `value`, and
/// returns the numbers it prints.
fn child_figures(variable: &str, value: &str) -> Vec<f64> {
    let output = std::process::Command::new(std::env::current_exe().expect("this bench"))
        .env(variable, value)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("the child bench runs");
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(|f| f.parse().expect("the child prints numbers"))
        .collect()
}

/// `/health` p99 under `#[cpu_bound]` saturation, with the CPU lane's
/// threads at lower priority (the default) and at the workers' priority:
/// each in a process of its own, since the setting is per process.
fn priority(report: &mut String) {
    const ROUNDS: usize = 2;
    let measure = |nice: i32| -> [Duration; 3] {
        let fields = child_figures(PRIORITY_CHILD, &nice.to_string());
        [0, 1, 2].map(|i| Duration::from_micros(fields[i] as u64))
    };
    // Rounds alternate the settings, so a noisy moment hits both alike.
    let mut lower = Vec::new();
    let mut equal = Vec::new();
    for _ in 0..ROUNDS {
        lower.push(measure(10));
        equal.push(measure(0));
    }
    writeln!(
        report,
        "## Priority: `/health` while the CPU lane is saturated\n"
    )
    .unwrap();
    writeln!(
        report,
        "The isolation scenario's `#[cpu_bound]` row (8 clients on a 20 ms CPU route, one probe \
         of `/health` every {} ms for {} s), run in a child process per setting, {ROUNDS} rounds \
         alternating: the CPU lane's threads 10 steps of `nice` below the tokio workers (the \
         default) against the same priority (`Config::cpu_nice(0)`).\n",
        PROBE_PAUSE.as_millis(),
        ISOLATION_LENGTH.as_secs()
    )
    .unwrap();
    writeln!(
        report,
        "| CPU lane threads | round | /health p50 | p99 | max |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|---|").unwrap();
    for (name, runs) in [("nice +10 (default)", &lower), ("equal priority", &equal)] {
        for (round, [p50, p99, max]) in runs.iter().enumerate() {
            writeln!(
                report,
                "| {name} | {} | {} | {} | {} |",
                round + 1,
                ms(*p50),
                ms(*p99),
                ms(*max)
            )
            .unwrap();
        }
    }
    let worst = |runs: &[[Duration; 3]]| runs.iter().map(|r| r[1]).max().expect("rounds ran");
    let best = |runs: &[[Duration; 3]]| runs.iter().map(|r| r[1]).min().expect("rounds ran");
    targets(
        report,
        &[(
            "/health p99 lower with the CPU lane at lower priority (worst round of nice +10 vs best of equal)",
            format!("{} vs {}", ms(worst(&lower)), ms(best(&equal))),
            worst(&lower) < best(&equal),
        )],
    );
}

/// Cost of the `#[io_bound]` poll timer, per poll: a future that returns
/// `Pending` ten million times, polled bare and wrapped.
fn poll_timer(report: &mut String) {
    const POLLS: u32 = 10_000_000;
    const ROUNDS: usize = 7;
    static SITE: lanes::__private::Site = lanes::__private::Site::io_bound("bench::poll_timer");

    /// Wakes itself and returns `Pending`, `left` times.
    struct Yields {
        left: u32,
    }
    impl Future for Yields {
        type Output = ();
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            if self.left == 0 {
                return std::task::Poll::Ready(());
            }
            self.left -= 1;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    }
    fn run(future: impl Future<Output = ()>) -> Duration {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let start = Instant::now();
        while future.as_mut().poll(&mut cx).is_pending() {}
        start.elapsed()
    }

    let mut bare = Vec::new();
    let mut timed = Vec::new();
    for _ in 0..ROUNDS {
        bare.push(run(black_box(Yields { left: POLLS })).as_nanos() as f64 / f64::from(POLLS));
        timed.push(
            run(lanes::__private::io_bound(
                &SITE,
                black_box(Yields { left: POLLS }),
            ))
            .as_nanos() as f64
                / f64::from(POLLS),
        );
    }
    let (bare, timed) = (median(bare), median(timed));
    let cost = timed - bare;
    writeln!(report, "## Cost of the `#[io_bound]` poll timer\n").unwrap();
    writeln!(
        report,
        "A future that wakes itself and returns `Pending` {POLLS} times, polled in a loop on one \
         thread, bare and inside the wrapper `#[io_bound]` emits, with the defaults on: the \
         10 ms slow-poll timer, the watchdog's per-poll record, and a Prometheus recorder \
         installed; median of {ROUNDS} interleaved rounds.\n"
    )
    .unwrap();
    writeln!(report, "| future | ns per poll |\n|---|---|").unwrap();
    writeln!(
        report,
        "| bare | {bare:.1} |\n| `#[io_bound]` wrapper | {timed:.1} |"
    )
    .unwrap();
    targets(
        report,
        &[(
            "poll timer under 50 ns per poll",
            format!("{cost:.1} ns"),
            cost < 50.0,
        )],
    );
}

/// The environment variable that makes this bench a child whose CPU lane
/// admits that many calls.
const WIDE_CHILD: &str = "LANES_BENCH_CPU_ADMISSION";
const WIDE_ADMISSION: usize = 256;

/// Cost of one dispatch to a pool and back, for a trivial body; then the
/// same in a child process whose CPU lane admits every call in flight.
fn dispatch(report: &mut String) {
    const SEQUENTIAL: u32 = 20_000;
    const CONCURRENT: u32 = 200_000;
    const IN_FLIGHT: usize = 64;
    const ROUNDS: usize = 9;

    #[lanes::cpu_bound]
    fn trivial_cpu() -> u64 {
        black_box(1)
    }
    #[lanes::blocking]
    fn trivial_blocking() -> u64 {
        black_box(1)
    }
    async fn rayon_oneshot() -> u64 {
        let (tx, rx) = tokio::sync::oneshot::channel();
        rayon::spawn(move || {
            let _ = tx.send(black_box(1));
        });
        rx.await.expect("the job answers")
    }
    async fn tokio_rayon() -> u64 {
        tokio_rayon::spawn(|| black_box(1)).await
    }
    async fn spawn_blocking() -> u64 {
        tokio::task::spawn_blocking(|| black_box(1))
            .await
            .expect("no panic")
    }

    /// ns per call of `call`, sequential and with `IN_FLIGHT` outstanding.
    async fn measure<F: Future<Output = u64>>(call: impl Fn() -> F) -> (f64, f64) {
        let start = Instant::now();
        for _ in 0..SEQUENTIAL {
            call().await;
        }
        let sequential = start.elapsed().as_nanos() as f64 / f64::from(SEQUENTIAL);
        let start = Instant::now();
        futures::stream::iter(0..CONCURRENT)
            .map(|_| call())
            .buffer_unordered(IN_FLIGHT)
            .for_each(|_| async {})
            .await;
        let concurrent = start.elapsed().as_nanos() as f64 / f64::from(CONCURRENT);
        (sequential, concurrent)
    }

    let runtime = client_runtime(SERVER_WORKERS);
    let mut results: Vec<(&str, Vec<(f64, f64)>)> = vec![
        ("`#[cpu_bound]` fn", Vec::new()),
        ("hand-written `rayon::spawn` + oneshot", Vec::new()),
        ("`tokio_rayon::spawn`", Vec::new()),
        ("`#[blocking]` fn", Vec::new()),
        ("hand-written `tokio::task::spawn_blocking`", Vec::new()),
    ];
    // Rounds interleave the mechanisms, so a noisy moment hits them alike.
    for _ in 0..ROUNDS {
        runtime.block_on(async {
            results[0].1.push(measure(trivial_cpu).await);
            results[1].1.push(measure(rayon_oneshot).await);
            results[2].1.push(measure(tokio_rayon).await);
            results[3].1.push(measure(trivial_blocking).await);
            results[4].1.push(measure(spawn_blocking).await);
        });
    }
    /// Median, lowest and highest of one column of the rounds.
    type Spread = (f64, f64, f64);
    fn spread(values: Vec<f64>) -> Spread {
        let low = values.iter().copied().fold(f64::INFINITY, f64::min);
        let high = values.iter().copied().fold(0.0, f64::max);
        (median(values), low, high)
    }
    let medians: Vec<(&str, Spread, Spread)> = results
        .into_iter()
        .map(|(name, runs)| {
            let sequential = spread(runs.iter().map(|r| r.0).collect());
            let concurrent = spread(runs.iter().map(|r| r.1).collect());
            (name, sequential, concurrent)
        })
        .collect();
    let wide = std::env::var(WIDE_CHILD).is_ok();
    if wide {
        writeln!(
            report,
            "### With `Config::cpu_admission({WIDE_ADMISSION})`\n"
        )
        .unwrap();
        writeln!(
            report,
            "The same, in a child process whose CPU lane admits all {IN_FLIGHT} calls in flight: \
             what admission waits cost above, and what the per-call counters and metrics cost.\n"
        )
        .unwrap();
    } else {
        writeln!(report, "## Dispatch cost per call\n").unwrap();
        writeln!(
            report,
            "A trivial body sent to a pool and awaited: {SEQUENTIAL} calls one after another, and \
             {CONCURRENT} calls with {IN_FLIGHT} in flight, from a {SERVER_WORKERS}-worker runtime; \
             median of {ROUNDS} interleaved rounds. The rayon-based rows use rayon's global pool \
             (one thread per core); `#[cpu_bound]` uses the CPU lane's pool of the same size, \
             with its default admission bound of 4 calls per thread, so at {IN_FLIGHT} in flight \
             most calls wait for admission (the hand-written rows queue without bound). Every \
             lanes call also counts itself and records its queue wait and run time to the \
             installed Prometheus recorder.\n"
        )
        .unwrap();
    }
    writeln!(
        report,
        "| mechanism | sequential, ns/call: median (range) | {IN_FLIGHT} in flight, ns/call: median (range) |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|").unwrap();
    for (name, (s, s_low, s_high), (c, c_low, c_high)) in &medians {
        writeln!(
            report,
            "| {name} | {s:.0} ({s_low:.0} to {s_high:.0}) | {c:.0} ({c_low:.0} to {c_high:.0}) |"
        )
        .unwrap();
    }
    // Within 5% of the hand-written median counts as no worse: the rounds'
    // ranges above show the noise is larger than that.
    let against = |lanes: usize, hand: usize| {
        let (lanes_name, (ls, ..), (lc, ..)) = medians[lanes];
        let (hand_name, (hs, ..), (hc, ..)) = medians[hand];
        (
            format!("{lanes_name} no worse than {hand_name} (sequential / in flight)"),
            format!("{:.2}x / {:.2}x", ls / hs, lc / hc),
            ls <= hs * 1.05 && lc <= hc * 1.05,
        )
    };
    let rows = [against(0, 1), against(0, 2), against(3, 4)];
    let rows: Vec<_> = rows
        .iter()
        .map(|(t, m, met)| (t.as_str(), m.clone(), *met))
        .collect();
    targets(report, &rows);
    if !wide {
        let child = std::process::Command::new(std::env::current_exe().expect("this bench"))
            .arg("dispatch")
            .env(WIDE_CHILD, WIDE_ADMISSION.to_string())
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("the child bench runs");
        report.push_str(&String::from_utf8_lossy(&child.stdout));
    }
}

/// `/health` with every monitor on (`#[io_bound]`) and off (a plain `async
/// fn`), interleaved request by request.
fn monitoring(report: &mut String) {
    const CLIENTS: usize = 16;
    const LENGTH: Duration = Duration::from_secs(10);
    let server = Server::start();
    let client = client_runtime(1);
    let [mut plain, mut io_bound] = client.block_on(load::alternating(
        server.addr,
        ["/health-plain", "/health"],
        CLIENTS,
        LENGTH,
    ));
    let mean = |latencies: &[Duration]| latencies.iter().sum::<Duration>() / latencies.len() as u32;
    let (plain_mean, io_bound_mean) = (mean(&plain), mean(&io_bound));
    let (plain_p50, io_bound_p50) = (
        load::quantile(&mut plain, 0.5),
        load::quantile(&mut io_bound, 0.5),
    );
    writeln!(report, "## `/health` with monitoring on and off\n").unwrap();
    writeln!(
        report,
        "`/health` as a plain `async fn` (monitoring off) and as an `#[io_bound] async fn` with \
         every monitor on (poll timer, watchdog, per-handler counters, the lag heartbeat, and a \
         Prometheus recorder installed) on one server: {CLIENTS} closed-loop clients for {} s, \
         each alternating between the two routes request by request, so both meet the same \
         moments of a noisy machine. With a fixed number of clients, answers per second go as \
         the inverse of the mean latency.\n",
        LENGTH.as_secs()
    )
    .unwrap();
    writeln!(
        report,
        "| handler | requests | mean latency | p50 latency |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|").unwrap();
    writeln!(
        report,
        "| plain `async fn` (off) | {} | {} | {} |",
        plain.len(),
        ms(plain_mean),
        ms(plain_p50)
    )
    .unwrap();
    writeln!(
        report,
        "| `#[io_bound] async fn` (on) | {} | {} | {} |",
        io_bound.len(),
        ms(io_bound_mean),
        ms(io_bound_p50)
    )
    .unwrap();
    let ratio = plain_mean.as_secs_f64() / io_bound_mean.as_secs_f64();
    targets(
        report,
        &[(
            "`/health` answers/s with monitoring on at least 97% of off",
            format!("{:.1}%", ratio * 100.0),
            ratio >= 0.97,
        )],
    );
}

/// One file of the synthetic crate: a service type, handlers, helpers and
/// tests, about 90 lines; every tenth file blocks in one handler.
fn synthetic_module(i: usize) -> String {
    let slow = if i.is_multiple_of(10) {
        "std::thread::sleep(std::time::Duration::from_millis(5));"
    } else {
        "tokio::time::sleep(std::time::Duration::from_millis(5)).await;"
    };
    format!(
        r#"//! Orders service, shard {i}.

use std::collections::HashMap;
use std::sync::{{Arc, Mutex}};

use axum::extract::{{Path, State}};
use axum::routing::get;
use axum::Router;

#[derive(Clone, Default)]
pub struct Shard{i} {{
    hits: Arc<Mutex<u64>>,
    names: Arc<Mutex<HashMap<u64, String>>>,
}}

impl Shard{i} {{
    pub fn new() -> Self {{
        Self::default()
    }}

    pub async fn name(&self, id: u64) -> Option<String> {{
        let found = {{
            let names = self.names.lock().unwrap();
            names.get(&id).cloned()
        }};
        match found {{
            Some(name) => Some(name),
            None => tokio::fs::read_to_string(format!("names/{{id}}.txt")).await.ok(),
        }}
    }}

    pub async fn touch(&self) -> u64 {{
        {slow}
        let mut hits = self.hits.lock().unwrap();
        *hits += 1;
        *hits
    }}

    fn checksum(&self, data: &[u8]) -> u32 {{
        data.iter().fold(0u32, |sum, b| sum.rotate_left(5) ^ u32::from(*b))
    }}
}}

async fn get_name(State(shard): State<Shard{i}>, Path(id): Path<u64>) -> String {{
    shard.name(id).await.unwrap_or_else(|| "unknown".to_owned())
}}

async fn get_hits(State(shard): State<Shard{i}>) -> String {{
    shard.touch().await.to_string()
}}

pub fn router() -> Router {{
    Router::new()
        .route("/shard/{i}/names/{{id}}", get(get_name))
        .route("/shard/{i}/hits", get(get_hits))
        .with_state(Shard{i}::new())
}}

#[cfg(test)]
mod tests {{
    use super::*;

    #[test]
    fn checksum_is_stable() {{
        let shard = Shard{i}::new();
        assert_eq!(shard.checksum(b"abc"), shard.checksum(b"abc"));
    }}

    #[tokio::test]
    async fn unknown_names_fall_back() {{
        let shard = Shard{i}::new();
        assert!(shard.name(u64::MAX).await.is_none());
    }}
}}
"#
    )
}

/// Files per second of `cargo lanes audit` over a synthetic 2,000-file crate.
fn audit(report: &mut String) {
    const FILES: usize = 2_000;
    const RUNS: usize = 5;
    let dir = std::env::temp_dir().join(format!("lanes-audit-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("src")).expect("a temporary folder");
    // A crate as cargo reads it: the audit builds its model from the root
    // through every `mod` line.
    let mut root = String::new();
    let mut lines = 0;
    for i in 0..FILES {
        let module = synthetic_module(i);
        lines += module.lines().count();
        std::fs::write(dir.join(format!("src/shard_{i}.rs")), module)
            .expect("write a synthetic file");
        writeln!(root, "pub mod shard_{i};").unwrap();
    }
    std::fs::write(dir.join("src/lib.rs"), root).expect("write the crate root");
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"shards\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
    )
    .expect("write the manifest");
    let mut hotspots = 0;
    let options = lanes_audit::Options::default();
    let times: Vec<f64> = (0..RUNS)
        .map(|_| {
            let start = Instant::now();
            let found = lanes_audit::audit(&dir, &options).expect("no lanes.toml to misread");
            let elapsed = start.elapsed().as_secs_f64();
            assert_eq!(found.files_read, FILES + 1);
            hotspots = found.error_count();
            elapsed
        })
        .collect();
    std::fs::remove_dir_all(&dir).expect("remove the synthetic crate");
    let time = median(times);
    let rate = FILES as f64 / time;
    writeln!(
        report,
        "## `cargo lanes audit` throughput
"
    )
    .unwrap();
    writeln!(
        report,
        "A synthetic crate of {FILES} module files ({lines} lines; each a service type, axum \
         handlers and tests; every tenth blocks in a handler) and a `lib.rs` declaring them, \
         written to a temporary folder and audited in-process on one thread (the audit is \
         single-threaded), crate model included (module tree, names, helper summaries), median \
         of {RUNS} runs, warm file cache.\n"
    )
    .unwrap();
    writeln!(
        report,
        "| files | lines | hotspots found | time | files/s |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|---|").unwrap();
    writeln!(
        report,
        "| {FILES} | {lines} | {hotspots} | {} | {rate:.0} |",
        ms(Duration::from_secs_f64(time))
    )
    .unwrap();
    targets(
        report,
        &[(
            "at least 2,000 files/s on one core",
            format!("{rate:.0} files/s"),
            rate >= 2_000.0,
        )],
    );
}

/// Where the job benchmarks keep their jobs.
enum JobStoreKind {
    Memory,
    Sqlite,
    Postgres(String),
}

impl JobStoreKind {
    fn name(&self) -> &'static str {
        match self {
            JobStoreKind::Memory => "memory",
            JobStoreKind::Sqlite => "SQLite",
            JobStoreKind::Postgres(_) => "PostgreSQL",
        }
    }

    /// A fresh, empty store, and what to remove afterwards.
    async fn open(&self, round: usize) -> (lanes::jobs::Store, Option<String>) {
        self.open_with(round, lanes::jobs::StoreOptions::new())
            .await
    }

    /// [`JobStoreKind::open`] with `options` (the memory store holds up to
    /// 1,000,000 jobs whatever they say).
    async fn open_with(
        &self,
        round: usize,
        options: lanes::jobs::StoreOptions,
    ) -> (lanes::jobs::Store, Option<String>) {
        let tag = format!("{}_{round}", std::process::id());
        let made = match self {
            JobStoreKind::Memory => return (lanes::jobs::Store::memory(1_000_000), None),
            JobStoreKind::Sqlite => std::env::temp_dir()
                .join(format!("lanes_bench_{tag}.db"))
                .display()
                .to_string(),
            JobStoreKind::Postgres(_) => format!("lanes_bench_{tag}"),
        };
        (self.reopen(&made, options).await, Some(made))
    }

    /// Another handle on the SQL store `made` by [`JobStoreKind::open_with`].
    async fn reopen(&self, made: &str, options: lanes::jobs::StoreOptions) -> lanes::jobs::Store {
        match self {
            JobStoreKind::Memory => unreachable!("a memory store cannot be reopened"),
            JobStoreKind::Sqlite => lanes::jobs::Store::sqlite_with(made, options)
                .await
                .expect("a SQLite store"),
            JobStoreKind::Postgres(url) => lanes::jobs::Store::postgres_with(url, made, options)
                .await
                .expect("a PostgreSQL store"),
        }
    }

    async fn remove(&self, what: Option<String>) {
        match (self, what) {
            (JobStoreKind::Sqlite, Some(path)) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{path}{suffix}"));
                }
            }
            (JobStoreKind::Postgres(url), Some(schema)) => {
                use sqlx::Connection;
                let mut connection = sqlx::PgConnection::connect(url).await.expect("PostgreSQL");
                // The name was made above: letters, digits and `_`.
                sqlx::query(sqlx::AssertSqlSafe(format!("DROP SCHEMA {schema} CASCADE")))
                    .execute(&mut connection)
                    .await
                    .expect("the bench schema is dropped");
            }
            _ => {}
        }
    }
}

/// Jobs per second, enqueue to completion, and pickup latency when idle,
/// on each store.
fn jobs(report: &mut String) {
    use lanes::jobs::{JobContext, NewJob, Registry, WorkerConfig, Workers};

    const PICKUPS: usize = 200;
    let mut stores = vec![JobStoreKind::Memory, JobStoreKind::Sqlite];
    match std::env::var("DATABASE_URL") {
        Ok(url) => stores.push(JobStoreKind::Postgres(url)),
        Err(_) => eprintln!("jobs: DATABASE_URL is not set; the PostgreSQL rows are left out"),
    }
    let runtime = client_runtime(SERVER_WORKERS);
    let epoch = Instant::now();
    let mut throughput = Vec::new();
    let mut pickup = Vec::new();
    let mut round = 0;
    for kind in &stores {
        let count: usize = match kind {
            JobStoreKind::Memory => 200_000,
            _ => 20_000,
        };
        for workers in [1, 16] {
            round += 1;
            let rate = runtime.block_on(async {
                let (store, made) = kind.open(round).await;
                let rate = trivial_jobs_rate(&store, workers, count).await;
                kind.remove(made).await;
                rate
            });
            throughput.push((kind.name(), workers, count, rate));
        }
        round += 1;
        let mut latencies = runtime.block_on(async {
            let (store, made) = kind.open(round).await;
            let (started, mut starts) = tokio::sync::mpsc::unbounded_channel();
            let registry = Registry::new().register("stamp", move |_: JobContext, sent: u64| {
                let started = started.clone();
                async move {
                    let now = epoch.elapsed().as_nanos() as u64;
                    let _ = started.send(Duration::from_nanos(now.saturating_sub(sent)));
                    Ok::<_, String>(())
                }
            });
            // Idle workers wait for a wakeup, never for the poll interval.
            let config = WorkerConfig::default().idle_wait(Duration::from_secs(60));
            let running =
                Workers::start(store.clone(), registry, config).expect("the workers start");
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut latencies = Vec::with_capacity(PICKUPS);
            for _ in 0..PICKUPS {
                let sent = epoch.elapsed().as_nanos() as u64;
                store
                    .enqueue(NewJob::new("stamp", serde_json::json!(sent)))
                    .await
                    .expect("enqueued");
                latencies.push(starts.recv().await.expect("the job starts"));
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            running.shutdown(Duration::from_secs(5)).await;
            kind.remove(made).await;
            latencies
        });
        pickup.push((
            kind.name(),
            load::quantile(&mut latencies, 0.5),
            load::quantile(&mut latencies, 0.99),
        ));
    }

    writeln!(
        report,
        "## Background jobs: throughput and pickup latency\n"
    )
    .unwrap();
    writeln!(
        report,
        "A trivial job (no arguments, returns at once) through `lanes::jobs`: {PRODUCERS} tasks \
         enqueue the jobs while the workers (1 or 16 jobs at once) run them; jobs/s is the count \
         over the time from the first enqueue to the last completion. Pickup: {PICKUPS} jobs \
         enqueued one at a time, 10 ms apart, to idle workers; the time from the enqueue call to \
         the job's start. The stores have their default options: enqueues are answered once durable \
         across power loss. SQLite in a temporary file; PostgreSQL 15 on 127.0.0.1, woken by \
         `NOTIFY`. Runtime: {SERVER_WORKERS} tokio workers.\n"
    )
    .unwrap();
    writeln!(
        report,
        "| store | jobs at once | jobs | jobs/s |\n|---|---|---|---|"
    )
    .unwrap();
    for (name, workers, count, rate) in &throughput {
        writeln!(report, "| {name} | {workers} | {count} | {rate:.0} |").unwrap();
    }
    writeln!(report, "\n| store | idle pickup p50 | p99 |\n|---|---|---|").unwrap();
    for (name, p50, p99) in &pickup {
        writeln!(report, "| {name} | {} | {} |", ms(*p50), ms(*p99)).unwrap();
    }
    let rate = |name: &str, workers: usize| {
        throughput
            .iter()
            .find(|row| row.0 == name && row.1 == workers)
            .map_or(0.0, |row| row.3)
    };
    let mut rows: Vec<(String, String, bool)> = Vec::new();
    let mut goal = |name: &str, workers: usize, floor: f64| {
        let measured = rate(name, workers);
        rows.push((
            format!("{name}, {workers} at once, at least {floor:.0} jobs/s"),
            format!("{measured:.0} jobs/s"),
            measured >= floor,
        ));
    };
    goal("memory", 16, 100_000.0);
    goal("SQLite", 1, 8_000.0);
    goal("SQLite", 16, 20_000.0);
    if stores.len() == 3 {
        goal("PostgreSQL", 1, 4_000.0);
        goal("PostgreSQL", 16, 10_000.0);
    }
    for (name, _, p99) in pickup.iter().filter(|row| row.0 != "memory") {
        rows.push((
            format!("{name} idle pickup p99 under 5 ms"),
            ms(*p99),
            *p99 < Duration::from_millis(5),
        ));
    }
    let rows: Vec<(&str, String, bool)> = rows
        .iter()
        .map(|(t, m, met)| (t.as_str(), m.clone(), *met))
        .collect();
    targets(report, &rows);
}

/// Jobs per second through `store`: `workers` jobs at once run `count`
/// trivial jobs while [`PRODUCERS`] tasks enqueue them, from the first
/// enqueue until the store has recorded the last completion.
async fn trivial_jobs_rate(store: &lanes::jobs::Store, workers: usize, count: usize) -> f64 {
    use lanes::jobs::{JobContext, Registry, WorkerConfig, Workers};

    // Counted in process: polling the store's count would load the very
    // database being measured.
    let ran = std::sync::Arc::new(AtomicU64::new(0));
    let counter = ran.clone();
    let registry = Registry::new().register("trivial", move |_: JobContext, (): ()| {
        counter.fetch_add(1, Ordering::Relaxed);
        async { Ok::<_, String>(()) }
    });
    let config = WorkerConfig::default().concurrency(workers);
    let running = Workers::start(store.clone(), registry, config).expect("the workers start");
    let start = Instant::now();
    enqueue_count(store, count).await;
    while ran.load(Ordering::Relaxed) < count as u64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // The last completions are being recorded.
    while store.unfinished().await.expect("the store answers") > 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    running.shutdown(Duration::from_secs(5)).await;
    rate
}

/// Enqueues per second from `tasks` tasks that enqueue one job after
/// another for `run`, no worker running.
async fn enqueue_rate(store: &lanes::jobs::Store, tasks: usize, run: Duration) -> f64 {
    let start = Instant::now();
    let deadline = start + run;
    let enqueuers: Vec<_> = (0..tasks)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut enqueued = 0_u64;
                while Instant::now() < deadline {
                    store
                        .enqueue(lanes::jobs::NewJob::new("trivial", serde_json::Value::Null))
                        .await
                        .expect("enqueued");
                    enqueued += 1;
                }
                enqueued
            })
        })
        .collect();
    let mut enqueued = 0;
    for enqueuer in enqueuers {
        enqueued += enqueuer.await.expect("the enqueuer ends");
    }
    enqueued as f64 / start.elapsed().as_secs_f64()
}

/// Enqueue throughput on the SQL stores with each durability, and with
/// and without the bound check, side by side.
fn enqueue_durability(report: &mut String) {
    use lanes::jobs::{Durability, StoreOptions};

    const RUN: Duration = Duration::from_millis(1500);
    const ROUNDS: usize = 3;
    const QUEUED: usize = 50_000;
    let mut stores = vec![JobStoreKind::Sqlite];
    match std::env::var("DATABASE_URL") {
        Ok(url) => stores.push(JobStoreKind::Postgres(url)),
        Err(_) => eprintln!(
            "enqueue-durability: DATABASE_URL is not set; the PostgreSQL rows are left out"
        ),
    }
    // (column, durability, store bound on, jobs queued before the run)
    let setups: [(&str, Durability, bool, usize); 5] = [
        ("power loss (default)", Durability::PowerLoss, true, 0),
        ("process crash", Durability::ProcessCrash, true, 0),
        ("power loss, unbounded", Durability::PowerLoss, false, 0),
        (
            "process crash, unbounded",
            Durability::ProcessCrash,
            false,
            0,
        ),
        (
            "power loss, 50,000 queued",
            Durability::PowerLoss,
            true,
            QUEUED,
        ),
    ];
    let options = |durability, bounded| {
        let options = StoreOptions::new().durability(durability);
        if bounded {
            options
        } else {
            options.unbounded()
        }
    };
    let runtime = client_runtime(SERVER_WORKERS);
    let mut round = 0;
    let mut rows = Vec::new();
    for kind in &stores {
        for tasks in [1, 16] {
            let mut rates = vec![Vec::new(); setups.len()];
            // Rounds outermost, so that a noisy moment hits every setup alike.
            for _ in 0..ROUNDS {
                for (column, &(_, durability, bounded, queued)) in setups.iter().enumerate() {
                    round += 1;
                    let rate = runtime.block_on(async {
                        let (store, made) = kind
                            .open_with(round, options(Durability::ProcessCrash, false))
                            .await;
                        let made = made.expect("a SQL store");
                        enqueue_count(&store, queued).await;
                        drop(store);
                        let store = kind.reopen(&made, options(durability, bounded)).await;
                        let rate = enqueue_rate(&store, tasks, RUN).await;
                        drop(store);
                        kind.remove(Some(made)).await;
                        rate
                    });
                    rates[column].push(rate);
                }
            }
            rows.push((
                kind.name(),
                tasks,
                rates.into_iter().map(median).collect::<Vec<_>>(),
            ));
        }
    }

    writeln!(report, "## Enqueue durability and the bound check\n").unwrap();
    writeln!(
        report,
        "Enqueues per second into a fresh store, no worker running: 1 or 16 tasks each enqueue one \
         trivial job after another for {} s; median of {ROUNDS} rounds, the setups interleaved \
         round by round (the machine is shared with other builds: noisy). Power loss \
         (`Durability::PowerLoss`, the default): SQLite answers an enqueue once a thread of the \
         store's has synced the WAL holding its commit (one sync for the commits made while the \
         last one ran), PostgreSQL waits for the WAL flush; process crash \
         (`Durability::ProcessCrash`): neither waits for the disk. Bounded: the default bound \
         of 100,000 unfinished jobs, checked in the enqueue's transaction (on PostgreSQL under \
         the schema's advisory lock: four round trips, `BEGIN` with the lock, a read of the \
         jobs added per queue, the insert with their update, and `COMMIT`; the jobs are \
         counted only when the last count plus those added since could pass the bound); \
         unbounded: `StoreOptions::unbounded()`, no check (and, on PostgreSQL, \
         no transaction). \
         The last column starts with {QUEUED} jobs queued. Enqueues made at once share a commit (SQLite's owner thread, \
         PostgreSQL's `batch.rs`). SQLite in a temporary file on ext4 (one `fdatasync` 0.4 ms at \
         the median and 4 ms at the 90th percentile here, on an idle machine); PostgreSQL 15 on 127.0.0.1. Runtime: {SERVER_WORKERS} \
         tokio workers. Run with `cargo bench -p lanes-benches -- enqueue-durability`.\n",
        RUN.as_secs_f64()
    )
    .unwrap();
    write!(report, "| store | tasks |").unwrap();
    for (column, ..) in &setups {
        write!(report, " {column} |").unwrap();
    }
    writeln!(
        report,
        " power loss / process crash | bounded / unbounded (power loss) |"
    )
    .unwrap();
    writeln!(report, "|---|---|{}---|---|", "---|".repeat(setups.len())).unwrap();
    for (name, tasks, rates) in &rows {
        write!(report, "| {name} | {tasks} |").unwrap();
        for rate in rates {
            write!(report, " {rate:.0} |").unwrap();
        }
        writeln!(
            report,
            " {:.2}x | {:.2}x |",
            rates[0] / rates[1],
            rates[0] / rates[2]
        )
        .unwrap();
    }
    writeln!(report).unwrap();
}

/// How many tasks enqueue at once in the job scenarios.
const PRODUCERS: usize = 16;

/// Enqueues `count` jobs from [`PRODUCERS`] tasks, as fast as the store
/// takes them.
async fn enqueue_count(store: &lanes::jobs::Store, count: usize) {
    let enqueuers: Vec<_> = (0..PRODUCERS)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in (task..count).step_by(PRODUCERS) {
                    store
                        .enqueue(lanes::jobs::NewJob::new("trivial", serde_json::Value::Null))
                        .await
                        .expect("enqueued");
                }
            })
        })
        .collect();
    for enqueuer in enqueuers {
        enqueuer.await.expect("the enqueuer ends");
    }
}

type Scenario = (&'static str, fn(&mut String));

const SCENARIOS: &[Scenario] = &[
    ("burst", burst),
    ("isolation", isolation),
    ("priority", priority),
    ("dispatch", dispatch),
    ("poll-timer", poll_timer),
    ("monitoring", monitoring),
    ("audit", audit),
    ("real-code", real_code::real_code),
    ("jobs", jobs),
    ("enqueue-durability", enqueue_durability),
    ("operations", operations::operations),
    ("watch", watch::watch),
    ("compile", compile::compile),
    ("side-by-side", peers::side_by_side),
    ("dashboard", dashboard::dashboard),
];

fn main() {
    // Every figure includes recording metrics, as in a monitored service,
    // whose exporter drains its histograms periodically.
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let exporter = recorder.handle();
    metrics::set_global_recorder(recorder).expect("the first recorder");
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(1));
            exporter.run_upkeep();
        }
    });
    if let Ok(admission) = std::env::var(WIDE_CHILD) {
        lanes::Config::new()
            .cpu_admission(admission.parse().expect("an admission bound"))
            .install()
            .expect("the child configures the lanes first");
    }
    if let Ok(store) = std::env::var(operations::JOBS_CHILD) {
        operations::child(&store);
        return;
    }
    if let Ok(quarantine) = std::env::var(watch::STALL_CHILD) {
        watch::stall_child(&quarantine);
        return;
    }
    if let Ok(nice) = std::env::var(PRIORITY_CHILD) {
        priority_child(nice.parse().expect("a nice value"));
        return;
    }
    // cargo passes `--bench`; the other words choose scenarios.
    let chosen: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mut report = String::new();
    for (name, scenario) in SCENARIOS {
        if chosen.is_empty() || chosen.iter().any(|c| c == name) {
            eprintln!("running {name}…");
            scenario(&mut report);
        }
    }
    if !chosen.is_empty() {
        print!("{report}");
        return;
    }
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let header = format!(
        "# Benchmark results\n\nWritten by `cargo bench -p lanes-benches` on {date}, on a machine \
         with {cores} cores (shared and noisy: read the ratios, measured side by side in one run, \
         rather than the absolute figures). Every load targets 127.0.0.1 and is bounded in count \
         and time.\n\n"
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/RESULTS.md");
    std::fs::write(path, header + &report).expect("write benches/RESULTS.md");
    print!("{report}");
    eprintln!("wrote {path}");
}
