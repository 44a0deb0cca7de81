//! The showcase service: a small axum app in which every route runs on the
//! lane that fits its work. `main.rs` serves it on 127.0.0.1:3000; the
//! end-to-end test (`tests/showcase.rs`) serves it on a free port and walks
//! the README's `curl` session against it, and `tests/showcase_process.rs`
//! runs the binary itself: signals, restarts, abusive clients.
//!
//! | route | lane | why |
//! |---|---|---|
//! | `GET /health` | `#[io_bound]` | answers at once |
//! | `POST /users`, `POST /login` | `#[io_bound]`, awaiting `#[cpu_bound]` | an argon2 hash takes tens of ms of CPU; the rows go through sqlx |
//! | `GET /users` | `#[io_bound]` | a read through sqlx's async SQLite driver |
//! | `GET /blur/{size}` | `#[cpu_bound]` | an image-like transform: pure computation |
//! | `POST /reports/{name}` | `#[blocking]` | rusqlite, a synchronous SQLite client, and `std::fs` |
//! | `GET /reports/{name}` | `#[io_bound]` | tokio's async file API |
//! | `GET /legacy/{key}` | `#[blocking]` | a dependency that can only be called synchronously |
//! | `GET /rates/{currency}` | `#[io_bound]`, wrongly | a vendor call that blocks where no macro can see: the watchdog reports it with its stack, and the quarantine moves the route off the event loop |
//! | `POST /exports/{name}` | `#[background]` | a durable job, answered `202` and followed at `/jobs/{id}` |
//! | `GET /metrics`, `GET /lanes/stats` | `#[io_bound]` | Prometheus text, and the same figures as JSON |
//! | `GET /lanes/dashboard` | the event loop | the live dashboard, read-only: it has no login to put its buttons behind |
//!
//! Names (of users, reports and exports) are 1 to 64 ASCII letters, digits
//! or `-`; request bodies are at most 16 KiB and must arrive within 10 s
//! ([`serve_until`] bounds the rest: headers, idle connections, their
//! number); files are written whole, to a temporary name then renamed.

mod serve;

use std::io::Write;
use std::path::{Path as FilePath, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use lanes::jobs::{JobContext, Store, WorkerConfig, Workers};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::RequestBodyDeadlineLayer;

pub use serve::{Drained, Draining, HEADER_READ_TIMEOUT, serve_until};

/// The users' database, in the data folder: written by sqlx, read by sqlx
/// and, for reports, by rusqlite.
const USERS_DB: &str = "users.db";

/// The largest request body: the JSON of a sign-up is far smaller.
const BODY_LIMIT: usize = 16 * 1024;

/// How long a client has to send a request's whole body.
pub const BODY_DEADLINE: Duration = Duration::from_secs(10);

/// How long a running job stays claimed without its worker renewing the
/// claim: the jobs of a killed instance run again after it (the lanes'
/// default, 30 s, is long to wait for in a demonstration).
pub const JOB_LEASE: Duration = Duration::from_secs(5);

/// The longest name of a user, a report or an export.
const NAME_LIMIT: usize = 64;

/// Each run of an export appends `started {job id}` to this file, in the
/// data folder, and `finished {job id}` once its file is written: a record
/// of which jobs ran, and how often.
pub const EXPORT_RUNS: &str = "exports/runs.log";

/// The service, started by [`Showcase::open`].
#[derive(Debug)]
pub struct Showcase {
    state: AppState,
    jobs: Store,
}

#[derive(Clone, Debug)]
struct AppState {
    data: PathBuf,
    users: SqlitePool,
    metrics: PrometheusHandle,
    /// Checked for names that do not exist, which never log in.
    decoy_hash: String,
}

/// Why the service could not start.
#[derive(Debug)]
pub struct StartError(String);

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

fn cannot_open(what: &str, error: impl std::fmt::Display) -> StartError {
    StartError(format!("{what}: {error}"))
}

impl Showcase {
    /// Opens (or creates) the service's data in `data`: the users'
    /// database, the reports, and the job store; configures the lanes with
    /// that store and the quarantine, and installs the Prometheus recorder.
    /// Once per process.
    pub async fn open(data: PathBuf) -> Result<Showcase, StartError> {
        tokio::fs::create_dir_all(data.join("reports"))
            .await
            .map_err(|e| cannot_open("the data folder", e))?;
        let users = SqlitePool::connect_with(
            SqliteConnectOptions::new()
                .filename(data.join(USERS_DB))
                .create_if_missing(true)
                // Reports read it with rusqlite while sign-ups write.
                .journal_mode(SqliteJournalMode::Wal),
        )
        .await
        .map_err(|e| cannot_open("the users' database", e))?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL)",
        )
        .execute(&users)
        .await
        .map_err(|e| cannot_open("the users' table", e))?;
        // Jobs are kept in SQLite beside the rest (the default is
        // `lanes-jobs.db` in the working directory).
        let jobs = Store::sqlite(data.join("jobs.db"))
            .await
            .map_err(|e| cannot_open("the job store", e))?;
        lanes::Config::new()
            .job_store(jobs.clone())
            // A route caught blocking again and again moves off the event
            // loop until its probes run clean (`/rates/{currency}` is one).
            .quarantine(Some(lanes::Quarantine::new()))
            .install()
            .map_err(|e| cannot_open("the lanes", e))?;
        // Installed before any lane fn runs, so every handler's metrics
        // reach it.
        let metrics = PrometheusBuilder::new()
            .install_recorder()
            .map_err(|e| cannot_open("the metrics recorder", e))?;
        let upkeep = metrics.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(5)).await;
                upkeep.run_upkeep();
            }
        });
        let decoy_hash = hash_password("no user has this password".to_owned())
            .await
            .map_err(|e| cannot_open("the decoy password hash", e))?;
        Ok(Showcase {
            state: AppState {
                data,
                users,
                metrics,
                decoy_hash,
            },
            jobs,
        })
    }

    /// Starts the workers that run the `#[background]` exports, with a
    /// lease of [`JOB_LEASE`], and the app's state for the jobs that take
    /// it.
    pub async fn start_workers(&self) -> Result<Workers, lanes::jobs::StartError> {
        let config = WorkerConfig::default()
            .lease(JOB_LEASE)
            .state(self.state.clone());
        lanes::jobs::start_workers(config).await
    }

    /// Every route, each on its lane.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/health", get(health))
            .route("/users", get(list_users).post(sign_up))
            .route("/login", post(log_in))
            .route("/blur/{size}", get(blur))
            .route("/reports/{name}", get(read_report).post(write_report))
            .route("/legacy/{key}", get(legacy_lookup))
            .route("/rates/{currency}", get(exchange_rate))
            .route("/exports/{name}", post(start_export))
            .route("/metrics", get(metrics))
            .route("/lanes/stats", get(|| async { lanes::stats() }))
            .with_state(self.state.clone())
            .merge(lanes::jobs::router(self.jobs.clone()))
            .nest(
                "/lanes/dashboard",
                lanes::Dashboard::new().jobs(self.jobs.clone()).router(),
            )
            // Every route's polls timed and watched, under its method and
            // path: a handler that blocks is reported with the stack of the
            // call, and (when the quarantine is on) moved off the event
            // loop. A request whose lane stays full past its maximum wait is
            // answered 503 with Retry-After instead of queueing without bound.
            .layer(lanes::Watch::new())
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .layer(RequestBodyDeadlineLayer::new(BODY_DEADLINE))
            .layer(CatchPanicLayer::new())
    }
}

/// The `curl` commands to try against the service at `addr`, as `main.rs`
/// prints them: the README's session, with `<id>` for the export's job id.
pub fn curl_commands(addr: &str) -> Vec<String> {
    let json = "-H 'content-type: application/json'";
    let ada = r#"'{"name":"ada","password":"correct horse battery staple"}'"#;
    vec![
        format!("curl http://{addr}/health"),
        format!("curl -X POST http://{addr}/users {json} -d {ada}"),
        format!("curl -X POST http://{addr}/login {json} -d {ada}"),
        format!("curl http://{addr}/users"),
        format!("curl -X POST http://{addr}/reports/weekly"),
        format!("curl -X POST http://{addr}/reports/monthly"),
        format!("curl http://{addr}/reports/weekly"),
        format!("curl http://{addr}/blur/256"),
        format!("curl http://{addr}/legacy/answer"),
        format!("curl http://{addr}/rates/USD"),
        format!("curl -s http://{addr}/metrics | grep exchange_rate"),
        format!("curl http://{addr}/lanes/stats"),
        format!("curl -i -X POST http://{addr}/exports/all"),
        format!("curl -N http://{addr}/jobs/<id>/events"),
        format!("curl http://{addr}/jobs/<id>"),
    ]
}

/// Refuses a name that is not plain, `400 Bad Request` with the rule;
/// `what` names it, as in "a report".
fn check_name(what: &str, name: &str) -> Result<(), (StatusCode, String)> {
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-';
    if (1..=NAME_LIMIT).contains(&name.len()) && name.chars().all(plain) {
        Ok(())
    } else {
        Err((
            StatusCode::BAD_REQUEST,
            format!("{what} name is 1 to {NAME_LIMIT} letters, digits or `-`\n"),
        ))
    }
}

/// Writes `contents` to `path` whole: to a temporary name in the same
/// folder, flushed to disk, then renamed over `path`, so that a reader
/// sees the old file or the new one, never a part of either.
fn write_whole(path: &FilePath, contents: &[u8]) -> std::io::Result<()> {
    // Unique per write, so that two writers of one file never share a
    // temporary; the leading dot and `.tmp` keep it out of the exports.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("a file path has a name"))?;
    let temporary = path.with_file_name(format!(
        ".{}.{}-{}.tmp",
        name.display(),
        std::process::id(),
        WRITES.fetch_add(1, Ordering::Relaxed)
    ));
    let written = std::fs::File::create(&temporary).and_then(|mut file| {
        file.write_all(contents)?;
        file.sync_all()
    });
    match written.and_then(|()| std::fs::rename(&temporary, path)) {
        Ok(()) => Ok(()),
        Err(error) => {
            let _ = std::fs::remove_file(&temporary);
            Err(error)
        }
    }
}

/// A failure the client should not see the details of: `500`, logged.
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Failure {
        Failure(error.to_string())
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        tracing::error!(error = self.0, "showcase: a request failed");
        (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
    }
}

/// Stays on the tokio worker: it only awaits.
#[lanes::io_bound]
async fn health() -> &'static str {
    "ok\n"
}

/// The longest password: argon2 hashes any length, but a long one only
/// costs CPU.
const PASSWORD_LIMIT: usize = 256;

#[derive(serde::Deserialize)]
struct Credentials {
    name: String,
    password: String,
}

/// Signs a user up: the argon2 hash runs on the CPU lane, awaited, so the
/// tokio worker serves other requests meanwhile; the row goes in through
/// sqlx.
#[lanes::io_bound]
async fn sign_up(
    State(app): State<AppState>,
    Json(user): Json<Credentials>,
) -> Result<(StatusCode, String), Failure> {
    if let Err((_, why)) = check_name("a user", &user.name) {
        return Ok((StatusCode::UNPROCESSABLE_ENTITY, why));
    }
    if !(8..=PASSWORD_LIMIT).contains(&user.password.chars().count()) {
        return Ok((
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("a password is 8 to {PASSWORD_LIMIT} characters\n"),
        ));
    }
    let hash = hash_password(user.password).await?;
    let added = sqlx::query(
        "INSERT INTO users (name, password_hash) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
    )
    .bind(&user.name)
    .bind(hash)
    .execute(&app.users)
    .await?;
    Ok(if added.rows_affected() == 1 {
        (StatusCode::CREATED, format!("created user {}\n", user.name))
    } else {
        (StatusCode::CONFLICT, format!("{} is taken\n", user.name))
    })
}

/// Checks a password against the stored hash, on the CPU lane.
#[lanes::io_bound]
async fn log_in(
    State(app): State<AppState>,
    Json(user): Json<Credentials>,
) -> Result<(StatusCode, String), Failure> {
    let stored: Option<String> =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE name = ?")
            .bind(&user.name)
            .fetch_optional(&app.users)
            .await?;
    // An unknown name is checked against a decoy hash too, so that the
    // answer's timing does not tell which names exist.
    let known = stored.is_some();
    let hash = stored.unwrap_or_else(|| app.decoy_hash.clone());
    let matches = verify_password(user.password, hash).await?;
    Ok(if known && matches {
        (StatusCode::OK, format!("welcome back, {}\n", user.name))
    } else {
        (
            StatusCode::UNAUTHORIZED,
            "wrong name or password\n".to_owned(),
        )
    })
}

/// Tens of milliseconds of CPU by design: on the CPU lane, below the tokio
/// workers' priority.
#[lanes::cpu_bound]
fn hash_password(password: String) -> Result<String, argon2::password_hash::Error> {
    Ok(Argon2::default()
        .hash_password(password.as_bytes())?
        .to_string())
}

#[lanes::cpu_bound]
fn verify_password(password: String, hash: String) -> Result<bool, argon2::password_hash::Error> {
    let hash = PasswordHash::new(&hash)?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &hash)
        .is_ok())
}

/// A read through sqlx: I/O that awaits, on the tokio worker.
#[lanes::io_bound]
async fn list_users(State(app): State<AppState>) -> Result<Json<Vec<String>>, Failure> {
    let names = sqlx::query_scalar("SELECT name FROM users ORDER BY name")
        .fetch_all(&app.users)
        .await?;
    Ok(Json(names))
}

/// Blurs a generated `size` x `size` greyscale image ten times: pure
/// computation, on the CPU lane.
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

/// Writes a report of the users with rusqlite, a synchronous SQLite client,
/// and `std::fs`: blocking I/O, on the blocking pool, at most four at a
/// time so that a slow disk cannot take every blocking thread.
#[lanes::blocking(limit = 4)]
fn write_report(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<(StatusCode, String), Failure> {
    if let Err(refusal) = check_name("a report", &name) {
        return Ok(refusal);
    }
    let db = rusqlite::Connection::open(app.data.join(USERS_DB))?;
    let mut users = db.prepare("SELECT name FROM users ORDER BY name")?;
    let names = users
        .query_map([], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    let report = format!("report {name}\nusers: {}\n", names.join(", "));
    let file = report_file(&name);
    write_whole(&app.data.join(&file), report.as_bytes())?;
    let users = match names.len() {
        1 => "1 user".to_owned(),
        n => format!("{n} users"),
    };
    Ok((StatusCode::CREATED, format!("wrote {file} ({users})\n")))
}

/// Reads a report back with tokio's async file API: I/O that awaits.
#[lanes::io_bound]
async fn read_report(
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> (StatusCode, String) {
    if let Err(refusal) = check_name("a report", &name) {
        return refusal;
    }
    match tokio::fs::read_to_string(app.data.join(report_file(&name))).await {
        Ok(text) => (StatusCode::OK, text),
        Err(_) => (StatusCode::NOT_FOUND, format!("no report named {name}\n")),
    }
}

/// The file of a report whose name passed [`check_name`].
fn report_file(name: &str) -> String {
    format!("reports/{name}.txt")
}

/// A legacy dependency that answers in 100 ms and can only be called
/// synchronously.
#[lanes::blocking]
fn legacy_lookup(Path(key): Path<String>) -> String {
    std::thread::sleep(Duration::from_millis(100));
    format!("{key}: found after 100 ms\n")
}

/// `vendor_sdk` blocks for 150 ms inside another crate, where no macro can
/// see it: the slow-poll timer and the watchdog report it at run time (see
/// the service's log and `/metrics`).
#[lanes::io_bound]
async fn exchange_rate(Path(currency): Path<String>) -> String {
    vendor_sdk::exchange_rate(&currency)
}

/// Prometheus' text format, from the recorder installed at start.
#[lanes::io_bound]
async fn metrics(State(app): State<AppState>) -> String {
    app.metrics.render()
}

#[derive(serde::Serialize)]
struct Export {
    file: String,
    reports: usize,
    bytes: usize,
}

/// Checks the export's name, then enqueues it: answered `202 Accepted`
/// with the job's id.
#[lanes::io_bound]
async fn start_export(State(app): State<AppState>, Path(name): Path<String>) -> Response {
    match check_name("an export", &name) {
        Ok(()) => export_reports(State(app), Path(name)).await.into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// Gathers every report into one file, as a durable job: the request is
/// answered `202 Accepted` at once with the job's id, `/jobs/{id}` shows
/// its progress and result, and the job survives a restart of the service.
/// A plain fn using `std::fs`, so its jobs run on the blocking lane. The
/// app's state is given by the workers, not stored with the job.
#[lanes::background(queue = "exports", retries = 2, timeout = "1m")]
fn export_reports(
    job: JobContext,
    State(app): State<AppState>,
    Path(name): Path<String>,
) -> Result<Export, std::io::Error> {
    let data = &app.data;
    std::fs::create_dir_all(data.join("exports"))?;
    record_run(data, &format!("started {}", job.id()))?;
    let mut reports: Vec<PathBuf> = std::fs::read_dir(data.join("reports"))?
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
        std::thread::sleep(Duration::from_millis(500));
        let percent = u8::try_from((done + 1) * 100 / reports.len()).unwrap_or(100);
        job.progress(
            percent,
            format!("{} of {} reports", done + 1, reports.len()),
        );
    }
    let file = export_file(&name);
    write_whole(&data.join(&file), archive.as_bytes())?;
    record_run(data, &format!("finished {}", job.id()))?;
    Ok(Export {
        file,
        reports: reports.len(),
        bytes: archive.len(),
    })
}

/// The file of an export whose name passed [`check_name`].
fn export_file(name: &str) -> String {
    format!("exports/{name}.txt")
}

/// Appends a line to [`EXPORT_RUNS`].
fn record_run(data: &FilePath, line: &str) -> std::io::Result<()> {
    let mut runs = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(data.join(EXPORT_RUNS))?;
    // One write per line, so that lines of concurrent runs do not mix.
    runs.write_all(format!("{line}\n").as_bytes())
}
