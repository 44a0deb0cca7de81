//! `cargo lanes audit`: the blocking calls in async code that carries no
//! lanes attribute yet, found by the same rules the `lanes` macros apply.

#![warn(missing_docs)]

mod config;
mod crates;
mod depth;
mod find;
pub mod output;
mod routes;

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use lanes_check::{BUILTIN, Config, ConfigError, Kind, Model, Scope, Severity, SourceFile};
use serde::{Serialize, Serializer};

use crate::config::Configs;
use crate::find::{AsyncBody, Piece};
use crate::routes::NamedRole;

/// What an audit found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// `.rs` files read, parsed or not.
    pub files_read: usize,
    /// Bodies with at least one blocking call, in file and line order.
    pub flagged: Vec<Flagged>,
    /// Files that were not audited, and why.
    pub skipped: Vec<Skipped>,
    /// Blocking calls in test code, not in `flagged` unless
    /// [`Options::include_tests`] asked for them.
    pub test_hotspots_left_out: usize,
}

/// One fn (or an async block inside a sync fn, or a part of either that
/// runs elsewhere) with blocking calls.
#[derive(Debug, Serialize)]
pub struct Flagged {
    /// Relative to the audited folder, with `/` separators.
    pub file: String,
    /// The name of the fn the body is in (`checkout`, `Api::users`).
    pub function: String,
    /// The findings are in an `async fn`'s body, not in an async block.
    pub is_async_fn: bool,
    /// Where the fn or block starts.
    pub line: usize,
    /// Where the code runs.
    pub context: Context,
    /// What the router makes of it: `handler for GET /users/{id}`,
    /// `middleware`.
    pub roles: Vec<String>,
    /// The body awaits something besides its blocking calls.
    pub awaits: bool,
    /// Its blocking calls, in source order.
    pub hotspots: Vec<Hotspot>,
}

/// Where flagged code runs, as far as the audit can tell. Ordered from the
/// strongest claim down, so that a fn both routed and spawned is a handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Context {
    /// Test code, reported only when asked for.
    Test,
    /// A fn or closure routed by axum or actix-web.
    Handler,
    /// axum's `from_fn`, actix-web's `wrap_fn`.
    Middleware,
    /// Handed to `tokio::spawn` and its kin.
    Background,
    /// `main` before the statement that starts the server: it runs once,
    /// before any request waits on it, so its findings are notes.
    StartUp,
    /// None known.
    Async,
}

impl Context {
    /// As the report prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Context::Test => "test",
            Context::Handler => "handler",
            Context::Middleware => "middleware",
            Context::Background => "background",
            Context::StartUp => "start-up",
            Context::Async => "async",
        }
    }
}

impl Serialize for Context {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One blocking call.
#[derive(Debug, Serialize)]
pub struct Hotspot {
    /// The call's line, 1-based.
    pub line: usize,
    /// 1-based, like rustc's.
    pub column: usize,
    /// The rule id (`thread-sleep`), or a `lanes.toml` rule's path.
    pub rule: String,
    /// A warning (a path stat) is reported without failing the audit.
    pub severity: Severity,
    /// What blocks and the fix, with the way down through the crate's
    /// helpers when the call reaches one.
    pub message: String,
}

impl Hotspot {
    /// A warning (a path stat): reported, but it does not fail the audit.
    pub fn is_warning(&self) -> bool {
        self.severity == Severity::Warning
    }
}

/// A file the audit could not read.
#[derive(Debug, Serialize)]
pub struct Skipped {
    /// Relative to the audited folder, with `/` separators.
    pub file: String,
    /// Why: it could not be read or parsed, it is nested too deeply to
    /// parse safely, or the audit failed on it.
    pub reason: String,
}

/// How to audit.
#[derive(Debug, Default)]
pub struct Options {
    /// Report test code too: `#[test]` fns, `#[cfg(test)]` items, and files
    /// under a `tests/`, `benches/` or `examples/` folder.
    pub include_tests: bool,
    /// Read every file's rules from this folder's `lanes.toml` (the
    /// `LANES_CONF_DIR` of the macros) rather than from its nearest one.
    pub config_dir: Option<PathBuf>,
}

/// Why an audit could not run.
#[derive(Debug)]
pub enum Error {
    /// A `lanes.toml` that does not hold valid rules.
    Config(ConfigError),
    /// The `lanes.toml` of [`Options::config_dir`] could not be read.
    MissingConfig {
        /// The file looked for.
        path: PathBuf,
        /// Why it could not be read.
        error: std::io::Error,
    },
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Config(error) => error.fmt(f),
            Error::MissingConfig { path, error } => write!(
                f,
                "cannot read {} (named by {}): {error}",
                path.display(),
                lanes_check::DIR_ENV
            ),
        }
    }
}

impl std::error::Error for Error {}

impl From<ConfigError> for Error {
    fn from(error: ConfigError) -> Error {
        Error::Config(error)
    }
}

impl Report {
    /// The blocking calls that fail the audit: all but the notes and the
    /// warnings.
    pub fn error_count(&self) -> usize {
        self.hotspots_where(|flagged, hotspot| !flagged.is_note() && !hotspot.is_warning())
    }

    /// The blocking calls reported as notes, which do not fail the audit.
    pub fn note_count(&self) -> usize {
        self.hotspots_where(|flagged, _| flagged.is_note())
    }

    /// The warnings outside start-up code, which do not fail the audit.
    pub fn warning_count(&self) -> usize {
        self.hotspots_where(|flagged, hotspot| !flagged.is_note() && hotspot.is_warning())
    }

    fn hotspots_where(&self, keep: impl Fn(&Flagged, &Hotspot) -> bool) -> usize {
        self.flagged
            .iter()
            .map(|f| f.hotspots.iter().filter(|h| keep(f, h)).count())
            .sum()
    }
}

impl Flagged {
    /// Start-up code runs once, before any request can wait on it: its
    /// blocking calls are worth knowing, not worth failing a build over.
    pub fn is_note(&self) -> bool {
        self.context == Context::StartUp
    }

    /// Where the code runs, as the text report says it: the router's roles
    /// for handlers and middleware, else the context; `None` when unknown.
    pub fn place(&self) -> Option<String> {
        match self.context {
            Context::Async => None,
            Context::Handler | Context::Middleware if !self.roles.is_empty() => {
                Some(self.roles.join(", "))
            }
            context => Some(context.as_str().to_owned()),
        }
    }

    /// The change that puts this code on the right lane.
    pub fn suggestion(&self) -> String {
        let cpu_only = self
            .hotspots
            .iter()
            .all(|h| rule_kind(&h.rule) == Some(Kind::CpuHeavy));
        let guard = self
            .hotspots
            .iter()
            .any(|h| h.rule == "std-guard-across-await");
        let block_on = self.hotspots.iter().any(|h| h.rule == "block-on");
        let helper = if cpu_only {
            "lanes::run_cpu"
        } else {
            "lanes::run_blocking"
        };
        if block_on {
            // The code is async already: the future only needs awaiting.
            "`.await` the futures instead of `block_on`, then mark the fn #[lanes::io_bound]"
                .to_owned()
        } else if !self.is_async_fn {
            format!("move the blocking calls of this async block into `{helper}(move || ..).await`")
        } else if guard {
            "#[lanes::io_bound], after dropping the std lock guard before the `.await` (or using \
             `tokio::sync::Mutex`)"
                .to_owned()
        } else if self.awaits {
            format!(
                "#[lanes::io_bound], with the blocking calls moved into `{helper}(move || ..).await`"
            )
        } else if cpu_only {
            format!(
                "#[lanes::cpu_bound] fn {}(..) (drop `async`)",
                self.short_name()
            )
        } else {
            format!(
                "#[lanes::blocking] fn {}(..) (drop `async`)",
                self.short_name()
            )
        }
    }

    fn short_name(&self) -> &str {
        short_name(&self.function)
    }
}

/// The last segment of a fn's name or path: `get` for `handlers::users::get`
/// and for `Users::get`. Routes are matched to fns by it.
fn short_name(path: &str) -> &str {
    path.rsplit("::").next().unwrap_or(path)
}

fn rule_kind(id: &str) -> Option<Kind> {
    BUILTIN
        .iter()
        .find(|rule| rule.id == id)
        .map(|rule| rule.kind)
}

/// The stack of the thread that parses and visits the files. syn and the
/// rule engine recurse once per level of nesting; a stack overflow aborts
/// the process instead of failing one file, so the thread gets room for
/// any file under [`depth::LIMIT`].
const PARSER_STACK: usize = 256 << 20;

/// Audits every `.rs` file under `root`, skipping `target/` and hidden
/// folders. Each file follows the `lanes.toml` of its nearest folder that
/// has one, up to `root`, unless `options` names one for all. Files are read
/// one at a time, on one thread with a large stack, so memory stays flat
/// however large the tree and no file can overflow the stack.
pub fn audit(root: &Path, options: &Options) -> Result<Report, Error> {
    let mut configs = Configs::new(root, options.config_dir.as_deref())?;
    let files = rust_files(root);
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("lanes-audit".to_owned())
            .stack_size(PARSER_STACK)
            .spawn_scoped(scope, || audit_files(root, &files, &mut configs, options))
            .expect("the audit thread starts")
            .join()
            .unwrap_or_else(|panic| panic::resume_unwind(panic))
    })
}

/// A flagged body (or part of one) whose context waits for the routers of
/// every file, since routes may be declared in another file than their
/// handlers.
struct Found {
    file: String,
    function: String,
    /// The fn as the crate model names it, to match the routes that name it.
    key: Option<String>,
    piece: Piece,
    hotspots: Vec<Hotspot>,
}

impl Found {
    /// The report's entry, given what every file names this fn to be.
    fn resolve(self, by_name: &HashMap<&str, Vec<&NamedRole>>) -> Flagged {
        // A route names this fn when its path resolves to it; one the model
        // could not resolve is matched by the fn's name alone.
        let named: Vec<&NamedRole> = by_name
            .get(short_name(&self.function))
            .into_iter()
            .flatten()
            .copied()
            .filter(|role| match (&role.target, &self.key) {
                (Some(target), Some(key)) => target == key,
                _ => true,
            })
            .collect();
        let (context, roles) = self.piece.place.resolve(&named);
        Flagged {
            file: self.file,
            function: self.function,
            is_async_fn: self.piece.is_async_fn,
            line: self.piece.line,
            context,
            roles,
            awaits: self.piece.awaits,
            hotspots: self.hotspots,
        }
    }
}

/// What one file holds: its flagged bodies, and the fns its routers, spawns
/// and middleware name.
struct Examined {
    found: Vec<Found>,
    named: Vec<NamedRole>,
}

fn audit_files(
    root: &Path,
    files: &[PathBuf],
    configs: &mut Configs,
    options: &Options,
) -> Result<Report, Error> {
    let mut report = Report {
        files_read: files.len(),
        ..Report::default()
    };
    let mut found = Vec::new();
    let mut named = Vec::new();
    // One package at a time: its crates are read from their roots into one
    // model, so that names resolve and the crate's helpers are followed.
    for group in crates::group_by_package(root, files) {
        let config = configs.for_file(&group.dir.join("Cargo.toml"))?.clone();
        let (model, sources, skipped) = crates::build(root, &group, &config);
        report.skipped.extend(skipped);
        for source in &sources {
            let config = configs.for_file(&source.path)?;
            let in_test_folder = is_in_test_folder(root, &source.path);
            // A panic is a bug of the audit, not of the file: it costs this
            // file, not the report on all the others.
            let examined = panic::catch_unwind(AssertUnwindSafe(|| {
                examine(source, config, &model, in_test_folder)
            }));
            match examined {
                Ok(examined) => {
                    found.extend(examined.found);
                    named.extend(examined.named);
                }
                Err(_) => report.skipped.push(Skipped {
                    file: source.display.clone(),
                    reason: "the audit failed on this file (a bug: please report it)".into(),
                }),
            }
        }
        drop(sources);
        // Every span of this package has been read. Forgetting them keeps
        // the thread's source map from growing with the tree (and from
        // wrapping around, which would corrupt line numbers, past 4 GiB of
        // code).
        proc_macro2::extra::invalidate_current_thread_spans();
    }
    let mut by_name: HashMap<&str, Vec<&NamedRole>> = HashMap::new();
    for role in &named {
        by_name
            .entry(short_name(&role.fn_path))
            .or_default()
            .push(role);
    }
    for found in found {
        let flagged = found.resolve(&by_name);
        if flagged.context == Context::Test && !options.include_tests {
            report.test_hotspots_left_out += flagged.hotspots.len();
        } else {
            report.flagged.push(flagged);
        }
    }
    report
        .flagged
        .sort_by(|a, b| (&a.file, a.line, a.context).cmp(&(&b.file, b.line, b.context)));
    report.skipped.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(report)
}

/// Lists what blocks in one parsed file of the model.
fn examine(source: &SourceFile, config: &Config, model: &Model, in_test_folder: bool) -> Examined {
    let mut roles = routes::of_file(&source.ast);
    for role in &mut roles.named {
        role.target = model.item_named(&source.path, role.line, &role.fn_path);
    }
    let found = find::async_bodies(&source.ast, &roles.in_place, in_test_folder)
        .into_iter()
        .flat_map(|body| flag(source, body, config, model))
        .collect();
    Examined {
        found,
        named: roles.named,
    }
}

/// The blocking calls of one body, split by the part of the body that
/// holds them; one entry per part that blocks.
fn flag(source: &SourceFile, body: AsyncBody<'_>, config: &Config, model: &Model) -> Vec<Found> {
    // The body's own hotspots first, then each part's.
    let mut hotspots: Vec<Vec<Hotspot>> = std::iter::repeat_with(Vec::new)
        .take(body.parts.len() + 1)
        .collect();
    let place = model.place_at(&source.path, body.whole.line);
    let at = place.as_ref().map(|place| (model, place));
    for finding in lanes_check::check(&body.block, body.sig, Scope::Async, config, at) {
        let at = finding.start.start();
        let slot = body.part_holding(at).map_or(0, |index| index + 1);
        hotspots[slot].push(Hotspot {
            line: at.line,
            column: at.column + 1,
            rule: finding.rule,
            severity: finding.severity,
            message: finding.message,
        });
    }
    let key = model.fn_defined(&source.path, body.whole.line, short_name(&body.function));
    let pieces = std::iter::once(body.whole).chain(body.parts.into_iter().map(|part| part.piece));
    pieces
        .zip(hotspots)
        .filter(|(_, hotspots)| !hotspots.is_empty())
        .map(|(piece, hotspots)| Found {
            file: source.display.clone(),
            function: body.function.clone(),
            key: key.clone(),
            piece,
            hotspots,
        })
        .collect()
}

/// The `.rs` files under `root`, in a stable order.
fn rust_files(root: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(root)
        .into_iter()
        .filter_entry(|entry| {
            let name = entry.file_name().to_string_lossy();
            entry.depth() == 0
                || !(entry.file_type().is_dir() && (name == "target" || name.starts_with('.')))
        })
        .filter_map(Result::ok)
        .filter(|entry| {
            entry.file_type().is_file() && entry.path().extension().is_some_and(|e| e == "rs")
        })
        .map(walkdir::DirEntry::into_path)
        .collect();
    files.sort();
    files
}

/// Cargo's folders of test code, at any depth below `root` (a workspace's
/// members have their own).
fn is_in_test_folder(root: &Path, path: &Path) -> bool {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative.parent().is_some_and(|folder| {
        folder.components().any(|c| {
            ["tests", "benches", "examples"]
                .iter()
                .any(|name| c.as_os_str() == *name)
        })
    })
}
