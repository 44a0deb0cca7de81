//! Put each axum/tokio handler on the executor that fits its work, and refuse
//! at compile time the handler that would stall the server.
//!
//! One blocking call inside an `async fn` (`std::thread::sleep`, `std::fs`, a
//! sync HTTP or database client, `block_on`, a bcrypt hash) freezes a tokio
//! worker and every request queued behind it. `lanes` gives each kind of work
//! its lane:
//!
//! | attribute | write it on | runs on |
//! |---|---|---|
//! | [`#[io_bound]`](io_bound) | `async fn` | the tokio worker, as written, after a check for blocking calls; each poll timed |
//! | [`#[blocking]`](blocking) | `fn` doing blocking I/O | tokio's blocking pool, behind limits |
//! | [`#[cpu_bound]`](cpu_bound) | `fn` doing computation | a rayon pool at lower priority, awaited |
//! | [`#[background]`](background) | `async fn` or `fn` | a durable job queue ([`jobs`]); the caller gets a job id at once |
//!
//! The rewritten fns keep their names, visibility, generics and argument
//! patterns, so they remain axum handlers:
//!
//! ```no_run
//! use axum::{Router, extract::Path, routing::get};
//!
//! #[lanes::io_bound]
//! async fn health() -> &'static str {
//!     "ok"
//! }
//!
//! #[lanes::blocking(limit = 8)]
//! fn report(Path(id): Path<u32>) -> String {
//!     std::fs::read_to_string(format!("/var/reports/{id}.txt")).unwrap_or_default()
//! }
//!
//! #[lanes::cpu_bound]
//! fn fib(Path(n): Path<u32>) -> String {
//!     fn fib(n: u32) -> u64 { if n < 2 { n.into() } else { fib(n - 1) + fib(n - 2) } }
//!     fib(n).to_string()
//! }
//!
//! # async fn serve() {
//! let app: Router = Router::new()
//!     .route("/health", get(health))
//!     .route("/report/{id}", get(report))
//!     .route("/fib/{n}", get(fib));
//! # }
//! ```
//!
//! A blocking call in an `#[io_bound]` fn is a compile error at the call,
//! with the fix:
//!
//! ```compile_fail
//! #[lanes::io_bound]
//! async fn handler() {
//!     std::thread::sleep(std::time::Duration::from_millis(100));
//!     // error: `std::thread::sleep` blocks the tokio worker inside #[io_bound];
//!     //        use `tokio::time::sleep(..).await`, or move this work into a #[blocking] fn
//! }
//! ```
//!
//! # Behaviour you can rely on
//! - The lanes start lazily with defaults; [`Config`] changes them.
//! - A panic in a `#[blocking]` or `#[cpu_bound]` body resumes in the awaiting
//!   task, exactly as if it had happened inline (tower-http's
//!   `CatchPanicLayer` turns it into a 500), and never kills a pool thread.
//! - When the awaiting future is dropped (the client went away) before the
//!   work started, the work is skipped.
//! - `#[blocking(limit = N)]` lets at most N calls of that fn run at once, so
//!   one slow dependency cannot take every blocking thread; the lane as a
//!   whole is bounded by [`Config::blocking_limit`].
//! - Each pool lane has an admission bound and a maximum wait; under
//!   [`ShedLayer`], a request whose call waited past it is answered `503
//!   Service Unavailable` with `Retry-After`.
//! - A poll of an `#[io_bound]` fn longer than 10 ms is logged as a `tracing`
//!   warning naming the fn, and a watchdog thread reports a poll that has held
//!   its worker for 100 ms while it is still stuck, with the stack of the call
//!   that blocks (on Linux): this catches blocking calls hidden in library
//!   code, which no macro can see. [`Watch`], one layer on a router, does the
//!   same for every route, with or without attributes, and can quarantine a
//!   route that keeps blocking ([`Config::quarantine`]).
//! - A `#[blocking]` or `#[cpu_bound]` body runs inside the caller's tracing
//!   span.
//! - Per-lane and per-handler metrics go through the `metrics` facade (the
//!   names are listed at [`stats()`], which returns the same figures as a
//!   JSON snapshot); [`testing::Load`] lets a test assert that a route does
//!   not stall the event loop, and [`testing::Strict`] fails a test at its
//!   first blocking poll, with the stack.
//!
//! # What counts as blocking
//! [`rules`] lists every call the attributes refuse, with its rule id and
//! the fix. A `lanes.toml` at the crate root adds blocking calls, allows
//! others and names the project's own offloaders ([`config_file`]). One
//! statement can be exempted, with a written reason:
//!
//! ```
//! #[lanes::io_bound]
//! async fn load_settings() -> String {
//!     #[lanes::allow_blocking("a 200-byte file on local disk, read once at start-up")]
//!     let text = std::fs::read_to_string("settings.toml").unwrap_or_default();
//!     text
//! }
//! ```
//!
//! # Features
//! - `macros` (default): the four attributes.
//! - `sqlite` (default): [`jobs::Store::sqlite`], the embedded durable job
//!   store `#[background]` uses unless [`Config::job_store`] names another
//!   (rusqlite, with SQLite bundled).
//! - `postgres`: [`jobs::Store::postgres`], for several instances sharing
//!   one queue (sqlx).
//!
//! # Minimum supported Rust version
//! Rust 1.94, the newest `rust-version` among the locked dependencies
//! (sqlx 0.9); the macros need at least 1.88 (`Span::local_file`).

#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_docs)]

mod clock;
mod config;
pub mod config_file;
mod dashboard;
mod detached;
mod heartbeat;
pub mod jobs;
mod lane;
mod poll;
pub mod rules {
    //! The calls the attributes refuse and `cargo lanes audit` reports, by
    //! rule id: what each matches, where it applies, and the fix. Generated
    //! from the rule table the macros run (`check/src/rules.rs`); projects
    //! add their own in `lanes.toml` ([`config_file`](crate::config_file)).
    //!
    #![doc = include_str!("../RULES.md")]
}
mod shed;
mod signal;
mod stack;
mod stats;
pub mod testing;
mod timeout;
mod watch;
mod watchdog;

#[doc(hidden)]
pub mod __private;

pub use config::{Config, ConfigError, Quarantine};
pub use dashboard::Dashboard;
pub use lane::Lane;
pub use shed::{Shed, ShedFuture, ShedLayer};
pub use signal::shutdown_signal;
pub use stack::{Frame, Stack};
pub use stats::{
    HandlerStats, JobStats, LaneStats, QueueStats, RouteMode, RouteStats, Stats, TimingStats, stats,
};
pub use timeout::TimedOut;
pub use watch::{Watch, Watched, WatchedFuture};

/// Marks an `async fn` that stays on the tokio worker, and checks its body
/// for blocking calls at compile time (the rules are listed in the README).
/// At run time each poll is timed: a slow poll is logged and counted, and
/// the watchdog reports a poll that holds its worker too long.
///
/// ```
/// #[lanes::io_bound]
/// async fn fetch(path: String) -> std::io::Result<Vec<u8>> {
///     tokio::fs::read(path).await
/// }
/// ```
///
/// `timeout = "2s"` (`ms`, `s`, `m`, `h`), here and on [`blocking`] and
/// [`cpu_bound`], bounds each call, waiting for its lane and running. The
/// fn returns `Result<T, E>` with `E: From<lanes::TimedOut>` ([`TimedOut`]):
/// `std::io::Error` has it, and `Box<dyn Error + Send + Sync>` and
/// `anyhow::Error` take it as they take any error. Past its timeout, a call
/// serving a request under [`ShedLayer`] or [`Watch`] never returns: the
/// request is answered `504 Gateway Timeout`. Outside a request the call
/// returns `Err(TimedOut.into())`. An `#[io_bound]` body is dropped; a
/// `#[blocking]` or `#[cpu_bound]` body cannot be stopped: it keeps its
/// slot until it returns. Each fn counts its timeouts
/// ([`HandlerStats::timeouts`], `lanes_timeouts_total`).
///
/// ```
/// use axum::http::StatusCode;
/// use axum::response::{IntoResponse, Response};
/// use axum::{Router, routing::get};
///
/// // A handler's error must answer, so `std::io::Error` will not do.
/// #[derive(Debug)]
/// struct AppError(String);
///
/// impl From<lanes::TimedOut> for AppError {
///     fn from(timed_out: lanes::TimedOut) -> AppError {
///         AppError(timed_out.to_string())
///     }
/// }
///
/// impl IntoResponse for AppError {
///     fn into_response(self) -> Response {
///         (StatusCode::INTERNAL_SERVER_ERROR, self.0).into_response()
///     }
/// }
///
/// #[lanes::io_bound(timeout = "2s")]
/// async fn rates() -> Result<String, AppError> {
///     Ok("1.08".to_owned())
/// }
///
/// #[lanes::blocking(limit = 4, timeout = "500ms")]
/// fn report() -> Result<String, AppError> {
///     std::fs::read_to_string("Cargo.toml").map_err(|e| AppError(e.to_string()))
/// }
///
/// #[lanes::cpu_bound(timeout = "1s")]
/// fn checksum(bytes: Vec<u8>) -> std::io::Result<u32> {
///     Ok(bytes.into_iter().map(u32::from).fold(0, u32::wrapping_add))
/// }
///
/// # #[tokio::main] async fn main() {
/// let app: Router = Router::new()
///     .route("/rates", get(rates))
///     .route("/report", get(report))
///     .layer(lanes::ShedLayer::new());
/// // Outside a request, past its timeout this would be `Err(e)`, with
/// // `e.kind() == std::io::ErrorKind::TimedOut`.
/// assert_eq!(checksum(vec![1, 2]).await.unwrap(), 3);
/// # }
/// ```
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use lanes_macros::io_bound;

/// Runs a synchronous fn doing blocking I/O on tokio's blocking pool, and
/// makes it `async`. `#[blocking(limit = N)]` caps how many calls of this fn
/// run at once; `timeout = "2s"` bounds each call, as on [`io_bound`] (a
/// body past its timeout cannot be stopped: it keeps its slot until it
/// returns).
///
/// Arguments move to the pool thread, so they must be owned (`Send +
/// 'static`); `.await` is refused in the body.
///
/// ```
/// #[lanes::blocking(limit = 4)]
/// fn file_size(path: std::path::PathBuf) -> std::io::Result<u64> {
///     Ok(std::fs::metadata(path)?.len())
/// }
///
/// # #[tokio::main] async fn main() {
/// let size = file_size("Cargo.toml".into()).await;
/// # }
/// ```
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use lanes_macros::blocking;

/// Runs a synchronous, CPU-heavy fn on the CPU lane's rayon pool, and makes
/// it `async`. Sleeping and blocking I/O are refused in the body (they belong
/// on `#[blocking]`). `timeout = "2s"` bounds each call, as on
/// [`io_bound`] (a body past its timeout cannot be stopped: it keeps its
/// slot until it returns).
///
/// ```
/// #[lanes::cpu_bound]
/// fn fib(n: u32) -> u64 {
///     fn go(n: u32) -> u64 { if n < 2 { n.into() } else { go(n - 1) + go(n - 2) } }
///     go(n)
/// }
///
/// # #[tokio::main] async fn main() {
/// assert_eq!(fib(20).await, 6765);
/// # }
/// ```
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use lanes_macros::cpu_bound;

/// Turns a fn into a durable job kind: calling it enqueues a job and
/// returns at once; a worker ([`jobs::start_workers`]) runs the body later,
/// with retries, a timeout, and a dead state after the last attempt.
///
/// - `async fn` bodies run on a tokio worker and are checked like
///   `#[io_bound]`; plain `fn` bodies run on the blocking lane.
/// - Arguments are stored as JSON until the job runs: each value an
///   argument's pattern binds must be owned and `Serialize +
///   DeserializeOwned` (`Json(body): Json<T>` stores `body`, so axum
///   extractors work as they are). A `JobContext` argument is not stored:
///   the worker passes it, for progress and cancellation.
/// - A `State<S>` argument (under any pattern) is not stored either: the
///   enqueueing fn keeps the parameter, so as a handler it still extracts
///   `S` from the router, but the job gets the workers' `S`, given once at
///   their start with [`WorkerConfig::state`](jobs::WorkerConfig::state)
///   (how a job reaches a database pool). `S` must be
///   `Clone + Send + Sync + 'static`. Workers whose queues hold a kind that
///   takes a state they were not given do not start:
///   [`jobs::StartError::MissingState`] names the kind and the type. `State` and `JobContext` are recognised by the
///   last segment of their path, as written (`State<S>`,
///   `axum::extract::State<S>`); an alias under another name is an argument
///   to store.
/// - It returns `()` or `Result<T, E>`: `T: Serialize` is kept as the job's
///   result, `E: Display` as its error, and an error is retried.
/// - The call returns [`jobs::Enqueue`], a future of
///   `Result<jobs::Accepted, jobs::StoreError>`: as a handler it answers
///   `202 Accepted` with `Location: /jobs/{id}`. Before awaiting it, the job
///   can be delayed (`run_after`), made idempotent (`idempotency_key`) or
///   sent to another store (`on`).
///
/// Options: `queue = "name"` (default `"default"`), `retries = N` attempts
/// after the first (default 2), `timeout = "30s"` per attempt (`ms`, `s`,
/// `m`, `h`; default 5 minutes), `kind = "name"` (the name stored jobs
/// refer to; default the fn's module path and name, so renaming the fn
/// orphans its queued jobs unless `kind` keeps the old name).
///
/// Schedules: `every = "5m"` or `cron = "0 3 * * *"` (one of the two) make
/// the workers enqueue the kind's jobs themselves, once per slot, with no
/// arguments: a scheduled fn takes only `JobContext` and `State<S>`
/// arguments. `every` takes a period as humantime reads it (`"30s"`,
/// `"5m"`, `"1h 30m"`, `"1day"`), and its slots are the multiples of it
/// from the Unix epoch (`"5m"`: :00, :05, :10...); `cron` takes a cron
/// expression as croner reads it, in UTC: five fields, `minute hour
/// day-of-month month day-of-week`, or six with the seconds first. Each
/// slot's job has the idempotency key `schedule:{kind}:{slot in Unix
/// milliseconds}`, so instances sharing a store enqueue it once between
/// them; [`JobContext::slot`](jobs::JobContext::slot) tells it its slot.
/// Slots missed while no instance ran are skipped but the latest: at
/// start, the workers enqueue the latest slot at or before now (nothing,
/// if an instance already did and the store still holds that job) and log
/// it; the same goes for slots missed while they could not enqueue. A
/// failed enqueue (store full, database down) is logged and tried again
/// within a second; the schedule stops with
/// [`jobs::Workers::shutdown`]. Only workers that take the kind's queue
/// enqueue it. [`jobs::Registry::schedules`] lists the scheduled kinds.
///
/// ```no_run
/// use axum::extract::State;
///
/// #[derive(Clone)]
/// struct Db;
///
/// #[lanes::background(cron = "0 3 * * *", queue = "reports")]
/// async fn nightly_report(job: lanes::jobs::JobContext, State(db): State<Db>) -> Result<(), String> {
///     let night = job.slot().expect("a scheduled job has a slot");
///     # let _ = (db, night);
///     Ok(())
/// }
///
/// #[lanes::background(every = "5m")]
/// fn sweep_uploads() {}
/// ```
///
/// ```no_run
/// use axum::extract::State;
/// use axum::{Json, Router, routing::post};
/// use lanes::jobs::{JobContext, WorkerConfig};
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Export { table: String }
///
/// #[derive(Clone)]
/// struct AppState { exports_dir: std::path::PathBuf }
///
/// #[lanes::background(queue = "exports", retries = 5, timeout = "10m")]
/// async fn export(
///     job: JobContext,
///     State(app): State<AppState>,
///     Json(export): Json<Export>,
/// ) -> Result<u64, std::io::Error> {
///     job.progress(50, format!("exporting {} to {}", export.table, app.exports_dir.display()));
///     Ok(42)
/// }
///
/// # async fn serve() -> Result<(), Box<dyn std::error::Error>> {
/// let app = AppState { exports_dir: "exports".into() };
/// let store = lanes::jobs::store().await?;
/// let workers = lanes::jobs::start_workers(WorkerConfig::default().state(app.clone())).await?;
/// let router: Router = Router::new()
///     .route("/exports", post(export))
///     .with_state(app)
///     .merge(lanes::jobs::router(store));
/// # Ok(()) }
/// ```
#[cfg(feature = "macros")]
#[cfg_attr(docsrs, doc(cfg(feature = "macros")))]
pub use lanes_macros::background;

/// Runs a closure on the blocking lane (behind [`Config::blocking_limit`])
/// and awaits it: the `#[blocking]` lane for code that is not a fn of its
/// own.
pub async fn run_blocking<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    static SITE: lane::Site = lane::Site::blocking("lanes::run_blocking", None);
    lane::blocking::run_blocking(&SITE, f).await
}

/// Runs a closure on the CPU lane and awaits it: the `#[cpu_bound]` lane for
/// code that is not a fn of its own.
pub async fn run_cpu<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    static SITE: lane::Site = lane::Site::cpu_bound("lanes::run_cpu");
    lane::cpu::run_cpu(&SITE, f).await
}
