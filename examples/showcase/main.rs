//! A small axum service in which every route runs on the lane that fits its
//! work. Run it with `cargo run --release --example showcase`, then try the
//! `curl` commands it prints (the README shows what they answer).
//!
//! Set `LANES_SHOWCASE_ADDR` to listen elsewhere than 127.0.0.1:3000.

use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use lanes::jobs::{JobContext, Store, WorkerConfig};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tower_http::catch_panic::CatchPanicLayer;

#[derive(Clone)]
struct AppState {
    reports: PathBuf,
    metrics: PrometheusHandle,
}

/// Stays on the tokio worker: it only awaits.
#[lanes::io_bound]
async fn health() -> &'static str {
    "ok"
}

/// Reads a report back with tokio's async file API: I/O that awaits.
#[lanes::io_bound]
async fn read_report(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> (StatusCode, String) {
    match tokio::fs::read_to_string(state.reports.join(file_name(&name))).await {
        Ok(text) => (StatusCode::OK, text),
        Err(_) => (StatusCode::NOT_FOUND, format!("no report named {name}\n")),
    }
}

/// Writes a report with the synchronous `std::fs` API: blocking I/O, on the
/// blocking pool, at most four at a time so a slow disk cannot take every
/// blocking thread.
#[lanes::blocking(limit = 4)]
fn write_report(State(state): State<AppState>, Path(name): Path<String>) -> (StatusCode, String) {
    let lines: Vec<String> = (1..=5)
        .map(|i| format!("line {i} of report {name}"))
        .collect();
    let path = state.reports.join(file_name(&name));
    match std::fs::write(&path, lines.join("\n") + "\n") {
        Ok(()) => (StatusCode::CREATED, format!("wrote {}\n", path.display())),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")),
    }
}

/// A legacy dependency that answers in 100 ms and can only be called
/// synchronously.
#[lanes::blocking]
fn legacy_lookup(Path(key): Path<String>) -> String {
    std::thread::sleep(Duration::from_millis(100));
    format!("{key}: found after 100 ms\n")
}

/// A vendor SDK whose innocent-looking call blocks for 150 ms: no macro can
/// see inside it, so the slow-poll timer and the watchdog report it at run
/// time (see the service's log).
mod vendor_sdk {
    pub(crate) fn exchange_rate(currency: &str) -> String {
        std::thread::sleep(std::time::Duration::from_millis(150));
        format!("1 EUR = 1.08 {currency}\n")
    }
}

#[lanes::io_bound]
async fn exchange_rate(Path(currency): Path<String>) -> String {
    vendor_sdk::exchange_rate(&currency)
}

/// Prometheus' text format, from the recorder installed at start.
#[lanes::io_bound]
async fn metrics(State(state): State<AppState>) -> String {
    state.metrics.render()
}

/// Blurs a generated `size` x `size` greyscale image ten times: pure
/// computation, on the CPU lane, below the tokio workers' priority.
#[lanes::cpu_bound]
fn blur(Path(size): Path<usize>) -> (StatusCode, String) {
    if !(1..=2048).contains(&size) {
        return (
            StatusCode::BAD_REQUEST,
            "size must be between 1 and 2048\n".to_owned(),
        );
    }
    let mut image: Vec<u32> = (0..size * size).map(|i| (i % 256) as u32).collect();
    for _ in 0..10 {
        image = box_blur(&image, size);
    }
    let mean = image.iter().map(|&p| u64::from(p)).sum::<u64>() / image.len() as u64;
    (
        StatusCode::OK,
        format!("blurred {size}x{size} ten times; mean brightness {mean}\n"),
    )
}

#[derive(serde::Serialize)]
struct Export {
    file: PathBuf,
    reports: usize,
    bytes: usize,
}

/// Gathers every report into one file, as a durable job: the request is
/// answered `202 Accepted` at once with the job's id, `/jobs/{id}` shows
/// its progress and result, and the job survives a restart of the service.
/// A plain fn using `std::fs`, so its jobs run on the blocking lane.
#[lanes::background(queue = "exports", retries = 2, timeout = "1m")]
fn export_reports(job: JobContext, Path(name): Path<String>) -> Result<Export, std::io::Error> {
    let mut reports: Vec<PathBuf> = std::fs::read_dir(reports_dir())?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    reports.retain(|path| path.extension().is_some_and(|ext| ext == "txt"));
    reports.sort();
    let mut archive = String::new();
    for (done, path) in reports.iter().enumerate() {
        if job.is_cancelled() {
            return Err(std::io::Error::other("cancelled"));
        }
        archive.push_str(&std::fs::read_to_string(path)?);
        // Slow enough to watch in `/jobs/{id}/events`.
        std::thread::sleep(Duration::from_millis(200));
        let percent = u8::try_from((done + 1) * 100 / reports.len()).unwrap_or(100);
        job.progress_blocking(
            percent,
            format!("{} of {} reports", done + 1, reports.len()),
        );
    }
    let exports = reports_dir().join("exports");
    std::fs::create_dir_all(&exports)?;
    let file = exports.join(file_name(&name));
    std::fs::write(&file, &archive)?;
    Ok(Export {
        file,
        reports: reports.len(),
        bytes: archive.len(),
    })
}

fn reports_dir() -> PathBuf {
    std::env::temp_dir().join("lanes-showcase-reports")
}

/// One pass of a 3x3 box blur, edges clamped.
fn box_blur(image: &[u32], size: usize) -> Vec<u32> {
    let at = |x: usize, y: usize| image[y * size + x];
    let mut out = vec![0; image.len()];
    for y in 0..size {
        for x in 0..size {
            let (x0, x1) = (x.saturating_sub(1), (x + 1).min(size - 1));
            let (y0, y1) = (y.saturating_sub(1), (y + 1).min(size - 1));
            let mut sum = 0;
            let mut count = 0;
            for yy in y0..=y1 {
                for xx in x0..=x1 {
                    sum += at(xx, yy);
                    count += 1;
                }
            }
            out[y * size + x] = sum / count;
        }
    }
    out
}

/// Keeps report names to one plain file name inside the reports folder.
fn file_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    format!("{safe}.txt")
}

fn app(state: AppState, jobs: Store) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/reports/{name}", get(read_report).post(write_report))
        .route("/legacy/{key}", get(legacy_lookup))
        .route("/blur/{size}", get(blur))
        .route("/rates/{currency}", get(exchange_rate))
        .route("/metrics", get(metrics))
        .route("/lanes/stats", get(|| async { lanes::stats() }))
        .route("/exports/{name}", post(export_reports))
        .with_state(state)
        .merge(lanes::jobs::router(jobs))
        // A request whose lane stays full past its maximum wait is answered
        // 503 with Retry-After instead of queueing without bound.
        .layer(lanes::ShedLayer::new())
        .layer(CatchPanicLayer::new())
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt().with_target(false).init();
    let reports = reports_dir();
    tokio::fs::create_dir_all(&reports).await?;
    // Jobs are kept in SQLite beside the reports (the default is
    // `lanes-jobs.db` in the working directory).
    let jobs = Store::sqlite(reports.join("jobs.db"))
        .await
        .map_err(std::io::Error::other)?;
    lanes::Config::new()
        .job_store(jobs.clone())
        .install()
        .map_err(std::io::Error::other)?;
    // Installed before any lane fn runs, so every handler's metrics reach it.
    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .map_err(std::io::Error::other)?;
    let upkeep = metrics.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            upkeep.run_upkeep();
        }
    });
    let addr = std::env::var("LANES_SHOWCASE_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let workers = lanes::jobs::start_workers(WorkerConfig::default())
        .await
        .map_err(std::io::Error::other)?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let addr = listener.local_addr()?;
    println!("lanes showcase listening on http://{addr}");
    println!("  curl http://{addr}/health");
    println!("  curl -X POST http://{addr}/reports/weekly");
    println!("  curl http://{addr}/reports/weekly");
    println!("  curl http://{addr}/legacy/answer");
    println!("  curl http://{addr}/blur/256");
    println!("  curl http://{addr}/rates/USD");
    println!("  curl http://{addr}/lanes/stats");
    println!("  curl -i -X POST http://{addr}/exports/all");
    println!("  curl http://{addr}/jobs/<id>");
    println!("  curl -N http://{addr}/jobs/<id>/events");
    println!("  curl http://{addr}/metrics");
    axum::serve(listener, app(AppState { reports, metrics }, jobs))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    // Running exports get 10 s to finish; the rest stay queued for the
    // next start.
    workers.shutdown(Duration::from_secs(10)).await;
    Ok(())
}
