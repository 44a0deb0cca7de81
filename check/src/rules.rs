//! The built-in rule table: what counts as blocking, as data.
//!
//! The rules see paths and call shapes, not types. A path resolved through
//! the crate model (`fs::read` after `use std::fs;`) must equal a rule's
//! path; one that nothing in scope explains is matched as written, by
//! suffix. A method on a std handle is recognised by where the handle came
//! from ([`Origin`]). The table is grouped by the headings of DESIGN.md's
//! "What counts as blocking". [`markdown`] renders it for the docs
//! (`check/RULES.md`).

use std::fmt::Write as _;

use crate::finding::{Scope, Severity};

/// What a rule is about; decides which lanes it applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Sleeping, file, process, network I/O, runtime re-entry, waiting on a
    /// thread or a sync channel: wrong on a tokio worker and on a CPU thread.
    Blocking,
    /// Known CPU-heavy calls: wrong on a tokio worker, right on `#[cpu_bound]`.
    CpuHeavy,
    /// A stat of a path (`Path::exists`, `.metadata()`): blocking, but short
    /// on a local disk; the audit reports it as a warning, the macros let it
    /// pass.
    PathStat,
}

impl Kind {
    /// Whether code running in `scope` is checked for calls of this kind.
    pub fn applies_in(self, scope: Scope) -> bool {
        match scope {
            Scope::Async => true,
            Scope::IoBound | Scope::BackgroundAsync => self != Kind::PathStat,
            Scope::CpuBound => self == Kind::Blocking,
            Scope::Blocking | Scope::BackgroundSync => false,
        }
    }

    /// How a finding of this kind counts: path stats are warnings.
    pub fn severity(self) -> Severity {
        match self {
            Kind::PathStat => Severity::Warning,
            Kind::Blocking | Kind::CpuHeavy => Severity::Error,
        }
    }
}

/// The rule id of a std or parking_lot lock guard alive at a later
/// `.await`: a check of its own, not an entry of [`BUILTIN`].
pub const GUARD_ACROSS_AWAIT: &str = "std-guard-across-await";

/// Whether code running in `scope` is checked for guards alive at an
/// `.await`: where there is an `.await` to hold them across.
pub(crate) fn guards_checked_in(scope: Scope) -> bool {
    matches!(
        scope,
        Scope::IoBound | Scope::Async | Scope::BackgroundAsync
    )
}

/// A std handle made in the body (or held by a field or argument of a
/// known type), whose methods block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `std::process::Command::new(..)` and its builder methods.
    Command,
    /// What `Command::spawn` returns.
    Child,
    /// A std thread's `JoinHandle` (`std::thread::spawn`, `Builder::spawn`).
    Thread,
    /// `std::thread::Builder`, until it spawns.
    ThreadBuilder,
    /// `std::net::TcpListener`.
    Listener,
    /// `std::net::TcpStream`, or a stream a std listener accepted.
    Socket,
    /// `std::fs::File`.
    File,
    /// `std::fs::OpenOptions` (also `File::options()`), until it opens.
    OpenOptions,
    /// `std::io::stdin()` or its lock.
    Stdin,
    /// The receiving half of a `std::sync::mpsc` channel.
    Receiver,
    /// `tar::Archive`.
    TarArchive,
    /// `redis::Client`, whose `get_connection` connects synchronously.
    RedisClient,
}

impl Origin {
    /// The handle, as the rules' documentation names it.
    fn described(self) -> &'static str {
        match self {
            Origin::Command => "a `std::process::Command`",
            Origin::Child => "the child a `std::process::Command` spawned",
            Origin::Thread => "a std thread's `JoinHandle`",
            Origin::ThreadBuilder => "a `std::thread::Builder`",
            Origin::Listener => "a `std::net::TcpListener`",
            Origin::Socket => "a `std::net::TcpStream` (or a stream a std listener accepted)",
            Origin::File => "a `std::fs::File`",
            Origin::OpenOptions => "a `std::fs::OpenOptions` (or `File::options()`)",
            Origin::Stdin => "`std::io::stdin()` or its lock",
            Origin::Receiver => "a `std::sync::mpsc` receiver",
            Origin::TarArchive => "a `tar::Archive`",
            Origin::RedisClient => "a `redis::Client`",
        }
    }
}

/// How a rule recognises a call.
#[derive(Clone, Copy, Debug)]
pub enum Matcher {
    /// A call `a::b::c(..)` whose written path is a suffix of `path` with at
    /// least `min` segments: `["std", "thread", "sleep"]` with `min: 1`
    /// matches `sleep(..)`, `thread::sleep(..)` and `std::thread::sleep(..)`.
    /// A `"*"` segment matches any name.
    Path {
        /// The full path, outermost segment first.
        path: &'static [&'static str],
        /// The fewest trailing segments a written call may have.
        min: usize,
    },
    /// A call whose written path starts with `prefix`: `ureq::get(..)`.
    PathPrefix(&'static [&'static str]),
    /// A method call `.name(..)`; `args` restricts the argument count so that
    /// `.join()` (a thread) is told apart from `.join(",")` (a slice).
    Method {
        /// The method's name.
        name: &'static str,
        /// The argument count it must have; `None` for any.
        args: Option<usize>,
    },
    /// A method call on a std handle: built in the same chain, bound by a
    /// `let`, or a field or argument of a known std type.
    OriginMethod {
        /// The handles whose methods block.
        origins: &'static [Origin],
        /// The methods that block.
        names: &'static [&'static str],
    },
    /// A method of diesel's synchronous `RunQueryDsl` (`.load(conn)`),
    /// in a module that uses diesel and not diesel-async.
    DieselQuery(&'static [&'static str]),
}

/// One built-in rule.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// Stable identifier, used in `lanes.toml`'s `allow` list and by the CLI.
    pub id: &'static str,
    /// Which lanes refuse it, and how the audit counts it.
    pub kind: Kind,
    /// Which calls it flags.
    pub matcher: Matcher,
    /// How the flagged call is named in the message; `{name}` is the called
    /// function or method, `{path}` the whole path, as written.
    pub call: &'static str,
    /// What to do instead on a tokio worker; `{name}` as above.
    pub fix: &'static str,
}

macro_rules! fix {
    ($head:literal) => {
        concat!($head, ", or move this work into a #[blocking] fn")
    };
}

/// The built-in rules, in DESIGN.md order.
pub const BUILTIN: &[Rule] = &[
    // Sleeping.
    Rule {
        id: "thread-sleep",
        kind: Kind::Blocking,
        matcher: Matcher::Path {
            path: &["std", "thread", "sleep"],
            min: 1,
        },
        call: "`std::thread::sleep`",
        fix: fix!("use `tokio::time::sleep(..).await`"),
    },
    // Files and processes.
    Rule {
        id: "std-fs",
        kind: Kind::Blocking,
        matcher: Matcher::Path {
            path: &["std", "fs", "*"],
            min: 2,
        },
        call: "`std::fs::{name}`",
        fix: fix!("use `tokio::fs::{name}(..).await`"),
    },
    Rule {
        id: "file-open",
        kind: Kind::Blocking,
        matcher: Matcher::Path {
            path: &["std", "fs", "File", "open"],
            min: 2,
        },
        call: "`std::fs::File::open`",
        fix: fix!("use `tokio::fs::File::open(..).await`"),
    },
    Rule {
        id: "file-create",
        kind: Kind::Blocking,
        matcher: Matcher::Path {
            path: &["std", "fs", "File", "create"],
            min: 2,
        },
        call: "`std::fs::File::create`",
        fix: fix!("use `tokio::fs::File::create(..).await`"),
    },
    Rule {
        id: "stdin",
        kind: Kind::Blocking,
        matcher: Matcher::OriginMethod {
            origins: &[Origin::Stdin],
            names: &[
                "read_line",
                "lines",
                "read_to_string",
                "read_to_end",
                "read",
                "read_exact",
                "bytes",
            ],
        },
        call: "reading `std::io::stdin` (`.{name}`)",
        fix: fix!("use `tokio::io::stdin()` and `.await` its reads"),
    },
    Rule {
        id: "file-open",
        kind: Kind::Blocking,
        matcher: Matcher::OriginMethod {
            origins: &[Origin::OpenOptions],
            names: &["open"],
        },
        call: "`std::fs::OpenOptions::open`",
        fix: fix!("use `tokio::fs::OpenOptions` and `.open(..).await`"),
    },
    Rule {
        id: "std-fs",
        kind: Kind::Blocking,
        matcher: Matcher::PathPrefix(&["fs_err"]),
        call: "`{path}`",
        fix: fix!("use `fs_err::tokio::{name}(..).await` (or `tokio::fs`)"),
    },
    Rule {
        id: "file-open",
        kind: Kind::Blocking,
        matcher: Matcher::Path {
            path: &["actix_files", "NamedFile", "open"],
            min: 2,
        },
        call: "`actix_files::NamedFile::open` (a std file open and stat)",
        fix: fix!("use `NamedFile::open_async(..).await`"),
    },
    Rule {
        id: "std-fs",
        kind: Kind::Blocking,
        matcher: Matcher::PathPrefix(&["tempfile"]),
        call: "`{path}` (it creates a file or folder synchronously)",
        fix: fix!("create it inside `lanes::run_blocking(move || ..).await`"),
    },
    Rule {
        id: "std-fs",
        kind: Kind::Blocking,
        matcher: Matcher::PathPrefix(&["fs_extra"]),
        call: "`{path}` (synchronous file-system work)",
        fix: fix!("run it inside `lanes::run_blocking(move || ..).await`"),
    },
    Rule {
        id: "std-fs",
        kind: Kind::Blocking,
        matcher: Matcher::Path {
            path: &["glob", "glob"],
            min: 2,
        },
        call: "`glob::glob` (it reads folders synchronously)",
        fix: fix!("run it inside `lanes::run_blocking(move || ..).await`"),
    },
    Rule {
        id: "std-io",
        kind: Kind::Blocking,
        matcher: Matcher::OriginMethod {
            origins: &[Origin::File, Origin::Socket],
            names: &[
                "read_to_end",
                "read_to_string",
                "read_exact",
                "write_all",
                "sync_all",
                "sync_data",
                "set_len",
                "read_at",
                "write_at",
            ],
        },
        call: "`.{name}(..)` on a std file or socket",
        fix: fix!(
            "open it with `tokio::fs::File` or `tokio::net::TcpStream` and `.await` the `AsyncReadExt`/`AsyncWriteExt` call"
        ),
    },
    Rule {
        id: "process-output",
        kind: Kind::Blocking,
        matcher: Matcher::OriginMethod {
            origins: &[Origin::Command],
            names: &["output"],
        },
        call: "`std::process::Command::output`",
        fix: fix!("use `tokio::process::Command` and `.output().await`"),
    },
    Rule {
        id: "process-status",
        kind: Kind::Blocking,
        matcher: Matcher::OriginMethod {
            origins: &[Origin::Command],
            names: &["status"],
        },
        call: "`std::process::Command::status`",
        fix: fix!("use `tokio::process::Command` and `.status().await`"),
    },
    Rule {
        id: "process-wait",
        kind: Kind::Blocking,
        matcher: Matcher::OriginMethod {
            origins: &[Origin::Child],
            names: &["wait", "wait_with_output"],
        },
        call: "`std::process::Child::wait`",
        fix: fix!("use `tokio::process::Command` and `.wait().await`"),
    },
    // Network.
    Rule {
        id: "tcp-connect",
        kind: Kind::Blocking,
        matcher: Matcher::Path {
            path: &["std", "net", "TcpStream", "*"],
            min: 2,
        },
        call: "`std::net::TcpStream::{name}`",
        fix: fix!("use `tokio::net::TcpStream::connect(..).await`"),
    },
    Rule {
        id: "socket-accept",
        kind: Kind::Blocking,
        matcher: Matcher::OriginMethod {
            origins: &[Origin::Listener],
            names: &["accept"],
        },
        call: "`.accept()` on a std listener",
        fix: fix!("use `tokio::net::TcpListener` and `.accept().await`"),
    },
    Rule {
        id: "reqwest-blocking",
        kind: Kind::Blocking,
        matcher: Matcher::PathPrefix(&["reqwest", "blocking"]),
        call: "`{path}`",
        fix: fix!("use the async `reqwest::Client` and `.await` its futures"),
    },
    Rule {
        id: "ureq",
        kind: Kind::Blocking,
        matcher: Matcher::PathPrefix(&["ureq"]),
        call: "`{path}` (a blocking HTTP client)",
        fix: fix!("use an async client such as `reqwest::Client`"),
    },
    Rule {
        id: "dns-lookup",
        kind: Kind::Blocking,
        matcher: Matcher::Method {
            name: "to_socket_addrs",
            args: Some(0),
        },
        call: "`.to_socket_addrs()` (a DNS lookup)",
        fix: fix!("use `tokio::net::lookup_host(..).await`"),
    },
    Rule {
        id: "sync-database",
        kind: Kind::Blocking,
        matcher: Matcher::PathPrefix(&["postgres"]),
        call: "`{path}` (the synchronous `postgres` client)",
        fix: fix!("use `tokio_postgres` (or sqlx) and `.await` its futures"),
    },
    Rule {
        id: "sync-database",
        kind: Kind::Blocking,
        matcher: Matcher::PathPrefix(&["rusqlite"]),
        call: "`{path}` (rusqlite is synchronous)",
        fix: fix!(
            "run it inside `lanes::run_blocking(move || ..).await`, or use sqlx's SQLite driver"
        ),
    },
    Rule {
        id: "sync-database",
        kind: Kind::Blocking,
        matcher: Matcher::OriginMethod {
            origins: &[Origin::RedisClient],
            names: &["get_connection", "get_connection_with_timeout"],
        },
        call: "`redis::Client::{name}` (a synchronous connection)",
        fix: fix!("use `get_multiplexed_async_connection().await`"),
    },
    Rule {
        id: "sync-database",
        kind: Kind::Blocking,
        matcher: Matcher::Path {
            path: &["diesel", "*", "establish"],
            min: 2,
        },
        call: "`{path}` (a synchronous diesel connection)",
        fix: fix!("use diesel-async, or a pool's `interact`"),
    },
    Rule {
        id: "sync-database",
        kind: Kind::Blocking,
        matcher: Matcher::Path {
            path: &["diesel", "*", "*", "establish"],
            min: 4,
        },
        call: "`{path}` (a synchronous diesel connection)",
        fix: fix!("use diesel-async, or a pool's `interact`"),
    },
    Rule {
        id: "sync-database",
        kind: Kind::Blocking,
        matcher: Matcher::DieselQuery(&["load", "get_result", "get_results", "execute", "first"]),
        call: "diesel's `.{name}(conn)` (a synchronous query)",
        fix: fix!("use diesel-async's `RunQueryDsl` and `.await` the query"),
    },
    Rule {
        id: "archive",
        kind: Kind::Blocking,
        matcher: Matcher::OriginMethod {
            origins: &[Origin::TarArchive],
            names: &["unpack", "entries"],
        },
        call: "`tar::Archive::{name}`",
        fix: fix!("run the extraction inside `lanes::run_blocking(move || ..).await`"),
    },
    Rule {
        id: "archive",
        kind: Kind::Blocking,
        matcher: Matcher::Path {
            path: &["zip", "ZipArchive", "new"],
            min: 2,
        },
        call: "`zip::ZipArchive::new` (it reads the archive's directory)",
        fix: fix!("run the extraction inside `lanes::run_blocking(move || ..).await`"),
    },
    Rule {
        id: "archive",
        kind: Kind::Blocking,
        matcher: Matcher::Path {
            path: &["zip", "read", "ZipArchive", "new"],
            min: 4,
        },
        call: "`zip::ZipArchive::new` (it reads the archive's directory)",
        fix: fix!("run the extraction inside `lanes::run_blocking(move || ..).await`"),
    },
    // Re-entering a runtime.
    Rule {
        id: "block-on",
        kind: Kind::Blocking,
        matcher: Matcher::Method {
            name: "block_on",
            args: None,
        },
        call: "`.block_on(..)`",
        fix: "`.await` the future instead: a runtime entered from inside a runtime panics or deadlocks",
    },
    Rule {
        id: "block-on",
        kind: Kind::Blocking,
        matcher: Matcher::Path {
            path: &["*", "executor", "block_on"],
            min: 1,
        },
        call: "`block_on`",
        fix: "`.await` the future instead: a runtime entered from inside a runtime panics or deadlocks",
    },
    Rule {
        id: "block-on",
        kind: Kind::Blocking,
        matcher: Matcher::Path {
            path: &["*", "task", "block_on"],
            min: 3,
        },
        call: "`block_on`",
        fix: "`.await` the future instead: a runtime entered from inside a runtime panics or deadlocks",
    },
    // tokio's own blocking bridges.
    Rule {
        id: "tokio-blocking-recv",
        kind: Kind::Blocking,
        matcher: Matcher::Method {
            name: "blocking_recv",
            args: None,
        },
        call: "`.blocking_recv()`",
        fix: "use `.recv().await`",
    },
    Rule {
        id: "tokio-blocking-send",
        kind: Kind::Blocking,
        matcher: Matcher::Method {
            name: "blocking_send",
            args: None,
        },
        call: "`.blocking_send(..)`",
        fix: "use `.send(..).await`",
    },
    Rule {
        id: "tokio-blocking-lock",
        kind: Kind::Blocking,
        matcher: Matcher::Method {
            name: "blocking_lock",
            args: None,
        },
        call: "`.blocking_lock()`",
        fix: "use `.lock().await`",
    },
    Rule {
        id: "tokio-blocking-read",
        kind: Kind::Blocking,
        matcher: Matcher::Method {
            name: "blocking_read",
            args: None,
        },
        call: "`.blocking_read()`",
        fix: "use `.read().await`",
    },
    Rule {
        id: "tokio-blocking-write",
        kind: Kind::Blocking,
        matcher: Matcher::Method {
            name: "blocking_write",
            args: None,
        },
        call: "`.blocking_write()`",
        fix: "use `.write().await`",
    },
    // Waiting for a thread.
    Rule {
        id: "thread-join",
        kind: Kind::Blocking,
        matcher: Matcher::OriginMethod {
            origins: &[Origin::Thread],
            names: &["join"],
        },
        call: "`.join()` on a std thread",
        fix: "`.await` a `tokio::task::JoinHandle` (from `tokio::task::spawn_blocking`) instead",
    },
    Rule {
        id: "thread-scope",
        kind: Kind::Blocking,
        matcher: Matcher::Path {
            path: &["std", "thread", "scope"],
            min: 2,
        },
        call: "`std::thread::scope` (it waits for every thread it starts)",
        fix: fix!("spawn `tokio::task::spawn_blocking` tasks and `.await` them"),
    },
    Rule {
        id: "mpsc-recv",
        kind: Kind::Blocking,
        matcher: Matcher::OriginMethod {
            origins: &[Origin::Receiver],
            names: &["recv", "recv_timeout"],
        },
        call: "`.{name}(..)` on a `std::sync::mpsc` receiver",
        fix: fix!("use a `tokio::sync::mpsc` channel and `.recv().await`"),
    },
    // Known CPU-heavy calls.
    Rule {
        id: "bcrypt",
        kind: Kind::CpuHeavy,
        matcher: Matcher::PathPrefix(&["bcrypt"]),
        call: "`{path}`",
        fix: CPU_FIX,
    },
    Rule {
        id: "argon2",
        kind: Kind::CpuHeavy,
        matcher: Matcher::PathPrefix(&["argon2"]),
        call: "`{path}`",
        fix: CPU_FIX,
    },
    Rule {
        id: "password-hash",
        kind: Kind::CpuHeavy,
        matcher: Matcher::Method {
            name: "hash_password",
            args: None,
        },
        call: "`.hash_password(..)`",
        fix: CPU_FIX,
    },
    Rule {
        id: "password-hash",
        kind: Kind::CpuHeavy,
        matcher: Matcher::Method {
            name: "verify_password",
            args: None,
        },
        call: "`.verify_password(..)`",
        fix: CPU_FIX,
    },
    Rule {
        id: "scrypt",
        kind: Kind::CpuHeavy,
        matcher: Matcher::PathPrefix(&["scrypt"]),
        call: "`{path}`",
        fix: CPU_FIX,
    },
    Rule {
        id: "pbkdf2",
        kind: Kind::CpuHeavy,
        matcher: Matcher::PathPrefix(&["pbkdf2"]),
        call: "`{path}`",
        fix: CPU_FIX,
    },
    Rule {
        id: "pbkdf2",
        kind: Kind::CpuHeavy,
        matcher: Matcher::PathPrefix(&["ring", "pbkdf2"]),
        call: "`{path}`",
        fix: CPU_FIX,
    },
    Rule {
        id: "argon2",
        kind: Kind::CpuHeavy,
        matcher: Matcher::PathPrefix(&["argon2_creds"]),
        call: "`{path}`",
        fix: CPU_FIX,
    },
    // Stats of a path: short on a local disk, so only the audit reports
    // them, as warnings.
    Rule {
        id: "path-stat",
        kind: Kind::PathStat,
        matcher: Matcher::Method {
            name: "exists",
            args: Some(0),
        },
        call: "`.exists()` (a file-system stat)",
        fix: PATH_STAT_FIX,
    },
    Rule {
        id: "path-stat",
        kind: Kind::PathStat,
        matcher: Matcher::Method {
            name: "is_file",
            args: Some(0),
        },
        call: "`.is_file()` (a file-system stat)",
        fix: PATH_STAT_FIX,
    },
    Rule {
        id: "path-stat",
        kind: Kind::PathStat,
        matcher: Matcher::Method {
            name: "is_dir",
            args: Some(0),
        },
        call: "`.is_dir()` (a file-system stat)",
        fix: PATH_STAT_FIX,
    },
    Rule {
        id: "path-stat",
        kind: Kind::PathStat,
        matcher: Matcher::Method {
            name: "metadata",
            args: Some(0),
        },
        call: "`.metadata()` (a file-system stat)",
        fix: PATH_STAT_FIX,
    },
];

const PATH_STAT_FIX: &str = "use `tokio::fs::try_exists(..).await` or `tokio::fs::metadata(..).await` (on a network file system a stat can take seconds)";

const CPU_FIX: &str =
    "a password hash costs tens to hundreds of milliseconds of CPU; move it into a #[cpu_bound] fn";

/// The rule table as Markdown: one row per rule (consecutive rules of one id
/// and fix share a row), with where it applies, what it matches and the
/// fix, derived from [`BUILTIN`] itself. `check/RULES.md` holds its output,
/// which the docs of `lanes` and `lanes-check` include; a test keeps the
/// two equal.
pub fn markdown() -> String {
    let mut out = String::from(
        "<!-- Generated from check/src/rules.rs; regenerate with \
         `LANES_BLESS=1 cargo test -p lanes-check rules_doc`. Do not edit. -->\n\n\
         A call matches by its path, resolved through the file's `use` lines, aliases and \
         re-exports (a path nothing in scope explains is matched as written); a method on a \
         std handle matches when the handle was made in the body, or is a field or argument \
         of that type. Every message ends with its rule id (`[lanes::thread-sleep]`), which \
         `lanes.toml`'s `allow` takes. *Checked in* names the code each rule applies to: \
         the attributes' bodies, and the async code `cargo lanes audit` reads. Never \
         flagged: `stdin().is_terminal()`, a zip archive read from an in-memory `Cursor`, \
         calls under `fs_err::tokio::`, and a stat of metadata already fetched \
         (`meta.is_file()`).\n\n\
         | rule id | checked in | what it matches | the fix |\n\
         |---|---|---|---|\n",
    );
    let mut rules = BUILTIN.iter().peekable();
    while let Some(rule) = rules.next() {
        let mut matches = vec![described_matcher(rule.matcher)];
        while let Some(next) = rules.next_if(|next| next.id == rule.id && next.fix == rule.fix) {
            matches.push(described_matcher(next.matcher));
        }
        row(
            &mut out,
            rule.id,
            &checked_in(|scope| rule.kind.applies_in(scope), rule.kind.severity()),
            &matches.join("; "),
            &fix_markdown(rule.fix),
        );
    }
    row(
        &mut out,
        GUARD_ACROSS_AWAIT,
        &checked_in(guards_checked_in, Severity::Error),
        "a std or parking_lot lock guard (`Mutex`, `RwLock`) alive at a later `.await`, \
         bound by `let`, `let .. else`, `if let`, a `match` arm or `.lock().map_err(..)?`; \
         one finding per `.await`, naming each guard and the line it was taken on. The lock \
         is known by its type (a field's, an argument's, a static's, an import's) or by the \
         `LockResult` its `.lock()` returns; a tokio lock, or a `.lock()` future passed on, \
         is never a guard",
        "drop the guard before awaiting (`drop(guard)`, or end its block), or use \
         `tokio::sync::Mutex`",
    );
    out
}

fn row(out: &mut String, id: &str, checked_in: &str, matches: &str, fix: &str) {
    // A `|` inside a cell, even in a code span, would end the cell.
    let cell = |text: &str| text.replace('|', "\\|");
    let _ = writeln!(
        out,
        "| `{id}` | {} | {} | {} |",
        cell(checked_in),
        cell(matches),
        cell(fix)
    );
}

/// The code a rule is checked in, as a user names it.
fn checked_in(applies: impl Fn(Scope) -> bool, severity: Severity) -> String {
    let scopes = [
        (Scope::IoBound, "`#[io_bound]`"),
        (Scope::CpuBound, "`#[cpu_bound]`"),
        (Scope::BackgroundAsync, "`#[background] async fn`"),
        (Scope::Blocking, "`#[blocking]`"),
        (Scope::BackgroundSync, "`#[background] fn`"),
    ];
    let mut places: Vec<&str> = scopes
        .iter()
        .filter(|(scope, _)| applies(*scope))
        .map(|(_, name)| *name)
        .collect();
    if applies(Scope::Async) {
        places.push(match severity {
            Severity::Error => "the audit",
            Severity::Warning => "the audit, as a warning",
        });
    }
    places.join(", ")
}

fn described_matcher(matcher: Matcher) -> String {
    let methods = |names: &[&str], args: &str| {
        names
            .iter()
            .map(|name| format!("`.{name}({args})`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match matcher {
        Matcher::Path { path, min } => {
            let full = path.join("::");
            if min >= path.len() {
                format!("`{full}(..)`")
            } else {
                let shortest = path[path.len() - min..].join("::");
                format!("`{full}(..)`, written as short as `{shortest}(..)`")
            }
        }
        Matcher::PathPrefix(prefix) => format!("any call under `{}::`", prefix.join("::")),
        Matcher::Method { name, args } => match args {
            Some(0) => format!("`.{name}()`"),
            Some(1) => format!("`.{name}(..)` with one argument"),
            Some(n) => format!("`.{name}(..)` with {n} arguments"),
            None => format!("`.{name}(..)`"),
        },
        Matcher::OriginMethod { origins, names } => {
            let origins: Vec<&str> = origins.iter().map(|origin| origin.described()).collect();
            format!("{} on {}", methods(names, ".."), origins.join(" or "))
        }
        Matcher::DieselQuery(names) => format!(
            "diesel's {} in a module that uses diesel and not diesel-async",
            methods(names, "conn")
        ),
    }
}

/// A fix as Markdown: its `{name}` and `{path}` placeholders as a reader
/// sees them, and the attributes it names as code (else rustdoc reads
/// `[blocking]` as a link).
fn fix_markdown(fix: &str) -> String {
    ["#[blocking]", "#[cpu_bound]"].iter().fold(
        fix.replace("{name}", "<name>").replace("{path}", "<path>"),
        |fix, attribute| fix.replace(attribute, &format!("`{attribute}`")),
    )
}

/// Paths whose closure arguments run somewhere else than the calling task, so
/// blocking inside them is the point, not a mistake. Matched like
/// [`Matcher::Path`].
pub(crate) const OFFLOADERS: &[(&[&str], usize)] = &[
    (&["tokio", "task", "spawn_blocking"], 1),
    (&["tokio", "task", "block_in_place"], 1),
    (&["std", "thread", "spawn"], 2),
    (&["rayon", "spawn"], 2),
    (&["rayon", "spawn_fifo"], 2),
    (&["tokio_rayon", "spawn"], 2),
    (&["tokio_rayon", "spawn_fifo"], 2),
    (&["blocking", "unblock"], 1),
    (&["actix_web", "web", "block"], 2),
    (&["lanes", "run_blocking"], 1),
    (&["lanes", "run_cpu"], 1),
];

/// Methods whose closure arguments are offloaded: `handle.spawn_blocking(..)`
/// (also `JoinSet`'s), `spawn_blocking_on`, `pool.spawn(..)` and
/// `pool.install(..)` on a rayon pool or a `thread::Builder`, deadpool's
/// `conn.interact(..)`. Only closures are exempt: an async block handed to
/// `.spawn(..)` runs on a tokio worker and is checked.
pub(crate) const OFFLOADING_METHODS: &[&str] = &[
    "spawn_blocking",
    "spawn_blocking_on",
    "spawn",
    "spawn_fifo",
    "install",
    "interact",
];

/// Calls whose arguments are futures they await (or spawn): a call written
/// there builds a future, whatever its name, and blocks nothing.
pub(crate) const FUTURE_CONSUMERS: &[&str] = &[
    "timeout",
    "timeout_at",
    "select",
    "select_all",
    "select_ok",
    "select_biased",
    "join",
    "join3",
    "join4",
    "join_all",
    "try_join",
    "try_join_all",
    "race",
    "spawn",
    "spawn_local",
    "unconstrained",
    "pin",
    "run_until_cancelled",
    "block_on",
];

/// Methods of futures that return another future: `fut.map_err(..).await`
/// awaits `fut` too.
pub(crate) const FUTURE_ADAPTERS: &[&str] = &[
    "map",
    "map_err",
    "map_ok",
    "and_then",
    "or_else",
    "then",
    "inspect",
    "inspect_err",
    "err_into",
    "ok_into",
    "boxed",
    "boxed_local",
    "fuse",
    "shared",
    "into_future",
    "catch_unwind",
    "instrument",
    "in_current_span",
    "with_current_subscriber",
    "timeout",
    "left_future",
    "right_future",
];

/// Paths of crates that are named like a blocking rule's but are async.
pub(crate) const ASYNC_PREFIXES: &[&[&str]] = &[&["fs_err", "tokio"]];

/// The written path `written` is a suffix of `pattern` of at least `min`
/// segments; `"*"` in the pattern matches any segment.
pub(crate) fn path_matches(written: &[String], pattern: &[&str], min: usize) -> bool {
    if written.len() < min.min(pattern.len()) || written.len() > pattern.len() {
        return false;
    }
    let tail = &pattern[pattern.len() - written.len()..];
    written.iter().zip(tail).all(|(w, p)| *p == "*" || w == p)
}

/// The written path starts with `prefix` and names something inside it.
pub(crate) fn path_starts_with(written: &[String], prefix: &[&str]) -> bool {
    written.len() > prefix.len() && written.iter().zip(prefix).all(|(w, p)| w == p)
}

/// A resolved path is `pattern` itself (`"*"` matching any segment).
pub(crate) fn path_equals(resolved: &[String], pattern: &[&str]) -> bool {
    resolved.len() == pattern.len()
        && resolved
            .iter()
            .zip(pattern)
            .all(|(w, p)| *p == "*" || w == p)
}

/// The written path is longer than `pattern` and ends with it:
/// `crate::legacy_db::Client::query` ends with `legacy_db::Client::query`.
pub(crate) fn path_ends_with(written: &[String], pattern: &[&str]) -> bool {
    written.len() > pattern.len()
        && written[written.len() - pattern.len()..]
            .iter()
            .zip(pattern)
            .all(|(w, p)| w == p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(path: &str) -> Vec<String> {
        path.split("::").map(str::to_owned).collect()
    }

    #[test]
    fn suffix_matching_respects_the_minimum() {
        let sleep = ["std", "thread", "sleep"];
        assert!(path_matches(&segs("sleep"), &sleep, 1));
        assert!(path_matches(&segs("thread::sleep"), &sleep, 1));
        assert!(path_matches(&segs("std::thread::sleep"), &sleep, 1));
        assert!(!path_matches(&segs("tokio::time::sleep"), &sleep, 1));
        assert!(!path_matches(&segs("my::std::thread::sleep"), &sleep, 1));

        let fs = ["std", "fs", "*"];
        assert!(path_matches(&segs("fs::read"), &fs, 2));
        assert!(path_matches(&segs("std::fs::write"), &fs, 2));
        assert!(!path_matches(&segs("read"), &fs, 2));
        assert!(!path_matches(&segs("tokio::fs::read"), &fs, 2));
    }

    #[test]
    fn prefix_matching_needs_an_item_inside_the_prefix() {
        assert!(path_starts_with(&segs("ureq::get"), &["ureq"]));
        assert!(path_starts_with(
            &segs("reqwest::blocking::get"),
            &["reqwest", "blocking"]
        ));
        assert!(!path_starts_with(
            &segs("reqwest::get"),
            &["reqwest", "blocking"]
        ));
        assert!(!path_starts_with(&segs("ureq"), &["ureq"]));
    }

    /// `check/RULES.md` is what [`markdown`] renders from the table, so that
    /// the docs never drift from the rules.
    #[test]
    fn rules_doc_is_the_rendered_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("RULES.md");
        let rendered = markdown();
        if std::env::var_os("LANES_BLESS").is_some() {
            std::fs::write(&path, &rendered).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == rendered,
            "{} is not the rendering of the rule table in check/src/rules.rs; \
             regenerate it with `LANES_BLESS=1 cargo test -p lanes-check rules_doc`",
            path.display()
        );
    }

    #[test]
    fn the_rules_doc_names_every_rule_and_escapes_closures() {
        let doc = markdown();
        for rule in BUILTIN {
            assert!(doc.contains(&format!("| `{}` |", rule.id)), "{}", rule.id);
        }
        assert!(doc.contains(
            "| `std-guard-across-await` | `#[io_bound]`, `#[background] async fn`, the audit |"
        ));
        assert!(doc.contains("| `path-stat` | the audit, as a warning |"));
        assert!(doc.contains("`lanes::run_blocking(move \\|\\| ..).await`"));
    }
}
