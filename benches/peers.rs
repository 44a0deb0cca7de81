//! Side by side: the `jobs` scenario's throughput workload on lanes and on
//! other job queues, in one run, so that the ratios hold whatever the noise
//! of the machine.
//!
//! The peers live outside the cargo workspace, so that their dependencies
//! never enter its lock file: `peers/apalis` is a cargo project of its own
//! (with its own `Cargo.lock`), built once here; `peers/bullmq` is a Node
//! package, installed once here with `npm ci`. Each measurement of a peer is
//! one run of its program, which times itself (first enqueue to last
//! completion, as lanes is timed here) and prints `jobs_per_second <f64>`.
//! A peer that cannot be built, installed or run leaves its rows out, with
//! the reason on stderr and in the report.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use lanes::jobs::{Durability, StoreOptions};

use crate::{JobStoreKind, PRODUCERS, SERVER_WORKERS, client_runtime, median, trivial_jobs_rate};

/// Jobs in each measurement.
const JOBS: usize = 20_000;
const ROUNDS: usize = 3;
/// Jobs run at once by the workers: the table's two columns.
const COLUMNS: [usize; 2] = [1, 16];
/// A peer's measurement that runs longer is killed and counted as failed.
const PEER_LIMIT: Duration = Duration::from_secs(120);
/// Building the apalis program or installing the Node packages.
const SETUP_LIMIT: Duration = Duration::from_secs(20 * 60);

/// The Redis instance of the machine, without persistence.
const REDIS_PLAIN_PORT: u16 = 6379;
/// The Redis instance started here, with an append-only file synced every
/// second.
const REDIS_AOF_PORT: u16 = 6390;

const APALIS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/apalis");
const BULLMQ_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/bullmq");

/// How one row of the table is measured.
enum Setup {
    Lanes(JobStoreKind, Durability),
    /// The apalis program on SQLite files in the temporary directory.
    ApalisSqlite(&'static str),
    /// The apalis program on a PostgreSQL database of its own (the URL).
    ApalisPostgres(String, &'static str),
    /// The BullMQ program on the Redis at this port.
    Bullmq(u16),
}

struct Row {
    system: &'static str,
    store: &'static str,
    durability: &'static str,
    setup: Setup,
    /// The jobs/s measured, one list per column.
    rates: [Vec<f64>; 2],
    /// Why a column has no figures: it failed once, and is not run again.
    failed: [Option<String>; 2],
    /// Why the whole row has no figures (its peer is missing).
    left_out: Option<String>,
}

impl Row {
    fn new(
        system: &'static str,
        store: &'static str,
        durability: &'static str,
        setup: Setup,
    ) -> Row {
        Row {
            system,
            store,
            durability,
            setup,
            rates: [Vec::new(), Vec::new()],
            failed: [None, None],
            left_out: None,
        }
    }

    fn label(&self) -> String {
        format!("{} {} ({})", self.system, self.store, self.durability)
    }

    /// The median of a column, when every round measured it.
    fn median(&self, column: usize) -> Option<f64> {
        let rates = &self.rates[column];
        (self.left_out.is_none() && self.failed[column].is_none() && rates.len() == ROUNDS)
            .then(|| median(rates.clone()))
    }

    /// The medians of both columns, when both were measured.
    fn medians(&self) -> Option<[f64; 2]> {
        Some([self.median(0)?, self.median(1)?])
    }
}

const POWER_LOSS: &str = "power loss";
const PROCESS_CRASH: &str = "process crash";
const AOF: &str = "AOF, fsync every second";
const NO_PERSISTENCE: &str = "none (in memory)";

/// The workload on lanes (SQLite, PostgreSQL), apalis (SQLite, PostgreSQL)
/// and BullMQ (Redis with and without AOF), every row and column once a
/// round; the medians, their ratios and the targets.
pub(crate) fn side_by_side(report: &mut String) {
    let database_url = std::env::var("DATABASE_URL").ok();
    let mut skipped = Vec::new();
    if database_url.is_none() {
        let note = "DATABASE_URL is not set: the PostgreSQL rows (lanes and apalis) are left out";
        eprintln!("side-by-side: {note}");
        skipped.push(note.to_owned());
    }
    let apalis_database = database_url.as_deref().map(|url| {
        ApalisDatabase::create(url, &format!("lanes_bench_apalis_{}", std::process::id()))
    });

    let mut rows = vec![
        Row::new(
            "lanes",
            "SQLite",
            "power loss (default)",
            Setup::Lanes(JobStoreKind::Sqlite, Durability::PowerLoss),
        ),
        Row::new(
            "lanes",
            "SQLite",
            PROCESS_CRASH,
            Setup::Lanes(JobStoreKind::Sqlite, Durability::ProcessCrash),
        ),
    ];
    if let Some(url) = &database_url {
        rows.push(Row::new(
            "lanes",
            "PostgreSQL",
            "power loss (default)",
            Setup::Lanes(JobStoreKind::Postgres(url.clone()), Durability::PowerLoss),
        ));
        rows.push(Row::new(
            "lanes",
            "PostgreSQL",
            PROCESS_CRASH,
            Setup::Lanes(
                JobStoreKind::Postgres(url.clone()),
                Durability::ProcessCrash,
            ),
        ));
    }
    rows.push(Row::new(
        "apalis",
        "SQLite",
        POWER_LOSS,
        Setup::ApalisSqlite("power-loss"),
    ));
    rows.push(Row::new(
        "apalis",
        "SQLite",
        PROCESS_CRASH,
        Setup::ApalisSqlite("process-crash"),
    ));
    match &apalis_database {
        Some(Ok(database)) => {
            rows.push(Row::new(
                "apalis",
                "PostgreSQL",
                POWER_LOSS,
                Setup::ApalisPostgres(database.url.clone(), "power-loss"),
            ));
            rows.push(Row::new(
                "apalis",
                "PostgreSQL",
                PROCESS_CRASH,
                Setup::ApalisPostgres(database.url.clone(), "process-crash"),
            ));
        }
        Some(Err(error)) => {
            let note = format!(
                "apalis on PostgreSQL is left out: its database could not be made: {error}"
            );
            eprintln!("side-by-side: {note}");
            skipped.push(note);
        }
        None => {}
    }
    rows.push(Row::new(
        "BullMQ",
        "Redis",
        AOF,
        Setup::Bullmq(REDIS_AOF_PORT),
    ));
    rows.push(Row::new(
        "BullMQ",
        "Redis",
        NO_PERSISTENCE,
        Setup::Bullmq(REDIS_PLAIN_PORT),
    ));

    // The peers' programs, built or installed once.
    let apalis = build_apalis();
    let bullmq = install_bullmq();
    let aof_redis = Redis::start(REDIS_AOF_PORT);
    let plain_redis = redis_persistence(REDIS_PLAIN_PORT);
    for row in &mut rows {
        row.left_out = match (&row.setup, &apalis, &bullmq) {
            (Setup::ApalisSqlite(_) | Setup::ApalisPostgres(..), Err(why), _) => {
                Some(format!("the apalis program could not be built: {why}"))
            }
            (Setup::Bullmq(_), _, Err(why)) => {
                Some(format!("the BullMQ package could not be installed: {why}"))
            }
            (Setup::Bullmq(REDIS_AOF_PORT), _, _) => aof_redis
                .as_ref()
                .err()
                .map(|why| format!("the Redis with AOF could not be started: {why}")),
            (Setup::Bullmq(_), _, _) => match &plain_redis {
                Ok(persistence) if persistence == "appendonly no, save \"\"" => None,
                Ok(persistence) => Some(format!(
                    "the Redis at port {REDIS_PLAIN_PORT} persists ({persistence})"
                )),
                Err(why) => Some(format!("no Redis at port {REDIS_PLAIN_PORT}: {why}")),
            },
            _ => None,
        };
        if let Some(why) = &row.left_out {
            eprintln!("side-by-side: {} is left out: {why}", row.label());
        }
    }

    let runtime = client_runtime(SERVER_WORKERS);
    let mut measurement = 0;
    // Rounds outermost, so that a noisy moment hits every system alike.
    for round in 1..=ROUNDS {
        for (column, &concurrency) in COLUMNS.iter().enumerate() {
            let measured = |row: &&mut Row| row.left_out.is_none() && row.failed[column].is_none();
            for row in rows.iter_mut().filter(measured) {
                measurement += 1;
                let rate = match &row.setup {
                    Setup::Lanes(kind, durability) => Ok(lanes_rate(
                        &runtime,
                        kind,
                        *durability,
                        concurrency,
                        measurement,
                    )),
                    Setup::ApalisSqlite(durability) => {
                        let program = apalis.as_ref().expect("checked above");
                        apalis_sqlite_rate(program, durability, concurrency, measurement)
                    }
                    Setup::ApalisPostgres(url, durability) => {
                        let program = apalis.as_ref().expect("checked above");
                        let store = format!("postgres:{url}");
                        run_peer(apalis_command(program, &store, durability, concurrency))
                    }
                    Setup::Bullmq(port) => run_peer(bullmq_command(*port, concurrency)),
                };
                match rate {
                    Ok(rate) => {
                        eprintln!(
                            "side-by-side: round {round}, {concurrency} at once, {}: {rate:.0} jobs/s",
                            row.label()
                        );
                        row.rates[column].push(rate);
                    }
                    Err(why) => {
                        let why = format!("failed in round {round}: {why}");
                        eprintln!(
                            "side-by-side: {}, {concurrency} at once, {why}; not run again",
                            row.label()
                        );
                        row.failed[column] = Some(why);
                    }
                }
            }
        }
    }
    drop(aof_redis);
    drop(apalis_database);

    let versions = Versions::read(database_url.as_deref(), &runtime);
    write_report(report, &rows, &skipped, &versions);
}

// ---------------------------------------------------------------- lanes

/// Jobs per second on lanes, as the `jobs` scenario measures them: the
/// workers run while [`PRODUCERS`] tasks enqueue, until the store has
/// recorded the last completion.
fn lanes_rate(
    runtime: &tokio::runtime::Runtime,
    kind: &JobStoreKind,
    durability: Durability,
    concurrency: usize,
    measurement: usize,
) -> f64 {
    runtime.block_on(async {
        let options = StoreOptions::new().durability(durability);
        // A name of its own: the `jobs` scenario's are numbered from 1 too.
        let (store, made) = kind.open_with(1_000_000 + measurement, options).await;
        let rate = trivial_jobs_rate(&store, concurrency, JOBS).await;
        kind.remove(made).await;
        rate
    })
}

// ---------------------------------------------------------------- apalis

/// Builds the apalis program (release, from its committed lock file): its
/// path, or why it could not be built.
fn build_apalis() -> Result<PathBuf, String> {
    eprintln!("side-by-side: building the apalis program…");
    let target = Path::new(APALIS_DIR).join("target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--locked", "--manifest-path"])
        .arg(Path::new(APALIS_DIR).join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .env("CARGO_TERM_COLOR", "never")
        // sqlx's query macros would check apalis' queries against the
        // database DATABASE_URL names (this bench's PostgreSQL); offline,
        // they read the query data apalis ships.
        .env_remove("DATABASE_URL")
        .env("SQLX_OFFLINE", "true")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTC_WRAPPER");
    let output = run_bounded(&mut command, SETUP_LIMIT)?;
    if !output.status.success() {
        return Err(format!(
            "cargo build failed ({}): {}",
            output.status,
            tail(&output.stderr)
        ));
    }
    Ok(target.join("release").join("apalis-bench"))
}

fn apalis_command(program: &Path, store: &str, durability: &str, concurrency: usize) -> Command {
    let mut command = Command::new(program);
    command
        .arg(store)
        .arg(concurrency.to_string())
        .arg(JOBS.to_string())
        .arg(PRODUCERS.to_string())
        .arg(durability);
    command
}

/// One apalis run on a fresh SQLite file, removed after.
fn apalis_sqlite_rate(
    program: &Path,
    durability: &str,
    concurrency: usize,
    measurement: usize,
) -> Result<f64, String> {
    let path = std::env::temp_dir().join(format!(
        "lanes_bench_apalis_{}_{measurement}.db",
        std::process::id()
    ));
    let store = format!("sqlite:{}", path.display());
    let rate = run_peer(apalis_command(program, &store, durability, concurrency));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    rate
}

/// A PostgreSQL database for apalis alone (its tables live in a fixed
/// schema, and its migrations are recorded in the database's `public`
/// schema): made at the start, dropped at the end.
struct ApalisDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl ApalisDatabase {
    fn create(admin_url: &str, name: &str) -> Result<ApalisDatabase, String> {
        let database = ApalisDatabase {
            admin_url: admin_url.to_owned(),
            name: name.to_owned(),
            url: with_database(admin_url, name),
        };
        database.execute(&format!("CREATE DATABASE {name}"))?;
        Ok(database)
    }

    /// One statement on the server's default connection, on a runtime of
    /// its own.
    fn execute(&self, statement: &str) -> Result<(), String> {
        use sqlx::Connection;
        let runtime = client_runtime(1);
        runtime.block_on(async {
            let mut connection = sqlx::PgConnection::connect(&self.admin_url)
                .await
                .map_err(|e| e.to_string())?;
            // The name was made above: letters, digits and `_`.
            sqlx::query(sqlx::AssertSqlSafe(statement.to_owned()))
                .execute(&mut connection)
                .await
                .map_err(|e| e.to_string())?;
            Ok(())
        })
    }
}

impl Drop for ApalisDatabase {
    fn drop(&mut self) {
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(error) = self.execute(&statement) {
            eprintln!(
                "side-by-side: the database {} was not dropped: {error}",
                self.name
            );
        }
    }
}

/// `url` with its database (the path) replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority = base.find("://").map_or(0, |i| i + 3);
    let path = base[authority..]
        .find('/')
        .map_or(base.len(), |i| authority + i);
    format!("{}/{database}{query}", &base[..path])
}

// ---------------------------------------------------------------- BullMQ

/// `npm ci` in the BullMQ package (from its committed lock file), or why
/// it failed.
fn install_bullmq() -> Result<(), String> {
    eprintln!("side-by-side: installing the BullMQ package (npm ci)…");
    let mut command = Command::new("npm");
    command
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(BULLMQ_DIR);
    let output = run_bounded(&mut command, SETUP_LIMIT)?;
    if !output.status.success() {
        return Err(format!(
            "npm ci failed ({}): {}",
            output.status,
            tail(&output.stderr)
        ));
    }
    Ok(())
}

fn bullmq_command(port: u16, concurrency: usize) -> Command {
    let mut command = Command::new("node");
    command
        .arg("bench.mjs")
        .arg(port.to_string())
        .arg(concurrency.to_string())
        .arg(JOBS.to_string())
        .arg(PRODUCERS.to_string())
        .current_dir(BULLMQ_DIR);
    command
}

/// A Redis server of this run, with an append-only file synced every
/// second in a temporary directory; stopped and removed when dropped.
struct Redis {
    child: Child,
    dir: PathBuf,
}

impl Redis {
    fn start(port: u16) -> Result<Redis, String> {
        if redis_reply(port, "PING").is_ok() {
            return Err(format!("something already answers at port {port}"));
        }
        let dir = std::env::temp_dir().join(format!("lanes_bench_redis_{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(&dir)
            .args(["--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("redis-server: {e}"))?;
        let redis = Redis { child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis_reply(port, "PING").is_err() {
            if Instant::now() > deadline {
                return Err(format!(
                    "redis-server did not answer at port {port} within 10 s"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(redis)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The reply of the Redis at `port` to an inline command, raw.
fn redis_reply(port: u16, command: &str) -> Result<String, String> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream =
        TcpStream::connect_timeout(&address, Duration::from_secs(1)).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(format!("{command}\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut reply = vec![0; 4096];
    let read = stream.read(&mut reply).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&reply[..read]).into_owned())
}

/// What the Redis at `port` persists: `appendonly no, save ""` when nothing.
fn redis_persistence(port: u16) -> Result<String, String> {
    // A reply to CONFIG GET is an array of name, value: the value is the
    // last line.
    let value = |name: &str| -> Result<String, String> {
        let reply = redis_reply(port, &format!("CONFIG GET {name}"))?;
        let lines: Vec<&str> = reply.split("\r\n").filter(|l| !l.is_empty()).collect();
        match lines.as_slice() {
            ["*2", _, _, _, value] => Ok((*value).to_owned()),
            ["*2", _, _, "$0"] => Ok(String::new()),
            _ => Err(format!("unexpected reply to CONFIG GET {name}: {reply:?}")),
        }
    };
    Ok(format!(
        "appendonly {}, save {:?}",
        value("appendonly")?,
        value("save")?
    ))
}

// ---------------------------------------------------------------- processes

/// Runs `command` to its end, or kills it (and the processes it started)
/// after `limit`.
fn run_bounded(command: &mut Command, limit: Duration) -> Result<std::process::Output, String> {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| format!("{command:?} did not start: {e}"))?;
    // Read as it comes, so that a full pipe never stalls the child.
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut text);
            }
            text
        })
    };
    let stdout = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                // The group is the child's own (`process_group(0)`).
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                return Err(format!("ran over {} s and was killed", limit.as_secs()));
            }
            Err(error) => return Err(format!("waiting for {command:?}: {error}")),
        }
    };
    Ok(std::process::Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

/// One run of a peer's program: the `jobs_per_second` it printed, or why
/// there is none.
fn run_peer(mut command: Command) -> Result<f64, String> {
    let output = run_bounded(&mut command, PEER_LIMIT)?;
    if !output.status.success() {
        return Err(format!(
            "exited with {}: {}",
            output.status,
            tail(&output.stderr)
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("jobs_per_second "))
        .and_then(|rate| rate.trim().parse::<f64>().ok())
        .filter(|rate| rate.is_finite() && *rate > 0.0)
        .ok_or_else(|| format!("printed no jobs_per_second: {}", tail(&output.stdout)))
}

/// The last lines of a program's output, on one line.
fn tail(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(3)..].join(" / ")
}

// ---------------------------------------------------------------- report

/// The versions the report names; "unknown" where one could not be read.
struct Versions {
    apalis: String,
    bullmq: String,
    ioredis: String,
    node: String,
    redis: String,
    postgres: String,
}

impl Versions {
    fn read(database_url: Option<&str>, runtime: &tokio::runtime::Runtime) -> Versions {
        let unknown = || "unknown".to_owned();
        let package = |name: &str| {
            let path = Path::new(BULLMQ_DIR)
                .join("node_modules")
                .join(name)
                .join("package.json");
            std::fs::read_to_string(path)
                .ok()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
                .and_then(|json| json["version"].as_str().map(str::to_owned))
                .unwrap_or_else(unknown)
        };
        let output = |program: &str, arg: &str| {
            Command::new(program)
                .arg(arg)
                .output()
                .ok()
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        };
        let redis = output("redis-server", "--version")
            .and_then(|v| {
                v.split_whitespace()
                    .find_map(|word| word.strip_prefix("v="))
                    .map(str::to_owned)
            })
            .unwrap_or_else(unknown);
        let postgres = database_url
            .and_then(|url| {
                runtime.block_on(async {
                    use sqlx::Connection;
                    let mut connection = sqlx::PgConnection::connect(url).await.ok()?;
                    sqlx::query_scalar::<_, String>("SHOW server_version")
                        .fetch_one(&mut connection)
                        .await
                        .ok()
                })
            })
            .unwrap_or_else(unknown);
        Versions {
            apalis: locked_version(&Path::new(APALIS_DIR).join("Cargo.lock"), "apalis")
                .unwrap_or_else(unknown),
            bullmq: package("bullmq"),
            ioredis: package("ioredis"),
            node: output("node", "--version").unwrap_or_else(unknown),
            redis,
            postgres,
        }
    }
}

/// The version of `package` in a cargo lock file.
fn locked_version(lock: &Path, package: &str) -> Option<String> {
    let text = std::fs::read_to_string(lock).ok()?;
    let mut lines = text.lines();
    lines.find(|line| *line == format!("name = \"{package}\""))?;
    lines
        .next()?
        .strip_prefix("version = \"")?
        .strip_suffix('"')
        .map(str::to_owned)
}

fn write_report(report: &mut String, rows: &[Row], skipped: &[String], versions: &Versions) {
    let Versions {
        apalis,
        bullmq,
        ioredis,
        node,
        redis,
        postgres,
    } = versions;
    writeln!(report, "## Side by side: lanes against other job queues\n").unwrap();
    writeln!(
        report,
        "The workload of the `jobs` scenario on each system: {JOBS} trivial jobs (a null payload, \
         the job does nothing and succeeds); {PRODUCERS} async producers enqueue them while one \
         worker runs them, 1 or 16 at once; jobs/s is {JOBS} over the time from the first enqueue \
         to the last completion recorded by the store. Median of {ROUNDS} rounds, the systems and \
         columns interleaved round by round (the machine is shared with other builds: read the \
         ratios). lanes runs in this process on {SERVER_WORKERS} tokio workers; the peers are \
         programs of their own, each timing itself the same way: apalis {apalis} \
         (`benches/peers/apalis`, apalis-sqlite and apalis-postgres, {SERVER_WORKERS} tokio \
         workers, each producer pushing one job at a time with `push`, the worker's \
         `concurrency` set to 1 or 16, woken by SQLite's update hook or by PostgreSQL's `NOTIFY` \
         with a 100 ms poll behind; on SQLite a pool of one connection, since with sqlx's \
         default of 10 the producers' pushes fail with \"database is locked\" after the 5 s \
         busy timeout) and BullMQ {bullmq} on ioredis {ioredis}, Node {node} \
         (`benches/peers/bullmq`, `queue.add` from each producer, one `Worker` with \
         `concurrency` 1 or 16, completions counted at its `completed` event, each job added \
         with `removeOnComplete: true` so that Redis does not fill, a queue of its own each run, \
         obliterated before and after). Redis {redis}; PostgreSQL {postgres} on 127.0.0.1; \
         SQLite in temporary files on ext4, WAL. Durability: power loss, an acknowledged enqueue \
         survives a power cut (lanes' default, `Durability::PowerLoss`: on SQLite an enqueue is \
         answered once its WAL is synced by a thread of the store's, on PostgreSQL with \
         `synchronous_commit = on`; apalis with SQLite's `synchronous = FULL` and PostgreSQL's \
         defaults); process crash, it survives a kill of the process \
         but a power cut may lose the last ones (SQLite `synchronous = NORMAL`, PostgreSQL \
         `synchronous_commit = off`: lanes' `Durability::ProcessCrash`, and the same settings \
         given to apalis' connections); AOF, Redis (started by the bench on port \
         {REDIS_AOF_PORT}) appends each write to its log and fsyncs it every second \
         (`--appendonly yes --appendfsync everysec`), so a power cut loses about the last \
         second, like process crash; none, the machine's Redis at port {REDIS_PLAIN_PORT} with \
         `--save \"\" --appendonly no`, which loses everything when it stops.\n"
    )
    .unwrap();
    writeln!(
        report,
        "| system | store | durability | 1 at once (jobs/s) | 16 at once (jobs/s) |\n\
         |---|---|---|---|---|"
    )
    .unwrap();
    let mut failures = Vec::new();
    for row in rows.iter().filter(|row| row.left_out.is_none()) {
        let cells = [0, 1].map(|column| match (row.median(column), &row.failed[column]) {
            (Some(rate), _) => format!("{rate:.0}"),
            (None, Some(why)) => {
                failures.push(format!(
                    "{}, {} at once: {why}",
                    row.label(),
                    COLUMNS[column]
                ));
                "failed".to_owned()
            }
            (None, None) => "-".to_owned(),
        });
        writeln!(
            report,
            "| {} | {} | {} | {} | {} |",
            row.system, row.store, row.durability, cells[0], cells[1]
        )
        .unwrap();
    }
    if !failures.is_empty() {
        writeln!(
            report,
            "\nFailed (a run over {} s is killed; a failed column is not run again): {}.",
            PEER_LIMIT.as_secs(),
            failures.join("; ")
        )
        .unwrap();
    }
    let apalis_sqlite_failed = rows.iter().any(|row| {
        row.system == "apalis" && row.store == "SQLite" && row.failed.iter().any(Option::is_some)
    });
    if apalis_sqlite_failed {
        writeln!(
            report,
            "\napalis on SQLite slows as it runs: its acknowledgement \
             (`UPDATE Jobs … FROM json_each(?)`, apalis-sqlite's `queries/task/ack.sql`) visits every job the \
             worker has locked, the done ones included, and reads the batch's JSON again for \
             each (SQLite's plan: `SEARCH Jobs USING INDEX LIdx (lock_by=?)`, then \
             `SCAN json_each`), so each batch costs in proportion to the jobs run before it."
        )
        .unwrap();
    }
    // Rows left out for one reason are named together.
    let mut left_out: Vec<(Vec<String>, &str)> = Vec::new();
    for row in rows {
        let Some(why) = row.left_out.as_deref() else {
            continue;
        };
        match left_out.iter_mut().find(|(_, reason)| *reason == why) {
            Some((labels, _)) => labels.push(row.label()),
            None => left_out.push((vec![row.label()], why)),
        }
    }
    let left_out: Vec<String> = skipped
        .iter()
        .cloned()
        .chain(
            left_out
                .into_iter()
                .map(|(labels, why)| format!("{}: {why}", labels.join(", "))),
        )
        .collect();
    if !left_out.is_empty() {
        writeln!(report, "\nLeft out: {}.", left_out.join("; ")).unwrap();
    }

    let find = |system: &str, store: &str, durability: &str| {
        rows.iter()
            .find(|row| {
                row.system == system && row.store == store && row.durability.starts_with(durability)
            })
            .and_then(Row::medians)
    };
    let bullmq_aof = find("BullMQ", "Redis", AOF);
    let mut target_rows: Vec<(String, String, bool)> = Vec::new();
    for (store, floors) in [
        ("SQLite", [8_000.0, 20_000.0]),
        ("PostgreSQL", [4_000.0, 10_000.0]),
    ] {
        let label = format!(
            "lanes {store} at least {} / {} jobs/s, 1 / 16 at once (the default durability row, \
             power loss)",
            thousands(floors[0]),
            thousands(floors[1])
        );
        target_rows.push(match find("lanes", store, POWER_LOSS) {
            Some(rates) => (
                label,
                format!("{:.0} / {:.0} jobs/s", rates[0], rates[1]),
                rates[0] >= floors[0] && rates[1] >= floors[1],
            ),
            None => (label, "not measured".to_owned(), false),
        });
    }
    for store in ["SQLite", "PostgreSQL"] {
        let label = format!(
            "lanes {store} against BullMQ on Redis with AOF, at least 1.5x in both columns (lanes' \
             process crash row against AOF everysec: both may lose the last enqueues at a power \
             cut)"
        );
        target_rows.push(match (find("lanes", store, PROCESS_CRASH), bullmq_aof) {
            (Some(lanes), Some(bullmq)) => {
                let ratios = [lanes[0] / bullmq[0], lanes[1] / bullmq[1]];
                (
                    label,
                    format!("{:.2}x / {:.2}x", ratios[0], ratios[1]),
                    ratios.iter().all(|r| *r >= 1.5),
                )
            }
            _ => (label, "not measured".to_owned(), false),
        });
    }
    let target_rows: Vec<(&str, String, bool)> = target_rows
        .iter()
        .map(|(target, measured, met)| (target.as_str(), measured.clone(), *met))
        .collect();
    crate::targets(report, &target_rows);

    writeln!(
        report,
        "Commands: the whole comparison is `DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
         cargo bench -p lanes-benches -- side-by-side`. Each peer alone, from the repository's \
         root (the first number is the worker's concurrency, 1 or 16; then the jobs and the producers):\n\n\
         ```sh\n\
         # apalis: build once, then one run per command (a fresh SQLite file each time;\n\
         # on PostgreSQL, a database of its own, whose apalis tables it empties first)\n\
         env -u DATABASE_URL SQLX_OFFLINE=true cargo build --release --locked --manifest-path benches/peers/apalis/Cargo.toml\n\
         rm -f /tmp/apalis.db*; benches/peers/apalis/target/release/apalis-bench sqlite:/tmp/apalis.db 16 {JOBS} {PRODUCERS} process-crash\n\
         psql postgres://postgres@127.0.0.1:5432/test -c 'CREATE DATABASE apalis_bench'\n\
         benches/peers/apalis/target/release/apalis-bench postgres:postgres://postgres@127.0.0.1:5432/apalis_bench 16 {JOBS} {PRODUCERS} power-loss\n\
         # BullMQ: install once, then one run per command, on the Redis at the port given\n\
         cd benches/peers/bullmq && npm ci\n\
         node bench.mjs {REDIS_PLAIN_PORT} 16 {JOBS} {PRODUCERS}\n\
         redis-server --port {REDIS_AOF_PORT} --appendonly yes --appendfsync everysec --save \"\" --dir \"$(mktemp -d)\" --daemonize no &\n\
         node bench.mjs {REDIS_AOF_PORT} 16 {JOBS} {PRODUCERS}\n\
         ```\n"
    )
    .unwrap();
}

/// 8000.0 as "8,000".
fn thousands(n: f64) -> String {
    let digits = format!("{n:.0}");
    let mut grouped = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}
