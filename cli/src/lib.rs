//! `cargo lanes audit`: the blocking calls in async code that carries no
//! lanes attribute yet, found by the same rules the `lanes` macros apply.

mod config;
mod depth;
mod find;
pub mod output;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use lanes_check::{BUILTIN, Config, ConfigError, Kind, Scope};
use serde::Serialize;

use crate::config::Configs;

/// What an audit found.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// `.rs` files read, parsed or not.
    pub files_read: usize,
    /// Bodies with at least one blocking call, in file and line order.
    pub flagged: Vec<Flagged>,
    /// Files that were not audited, and why.
    pub skipped: Vec<Skipped>,
}

/// One fn (or an async block inside a sync fn) with blocking calls.
#[derive(Debug, Serialize)]
pub struct Flagged {
    /// Relative to the audited folder, with `/` separators.
    pub file: String,
    pub function: String,
    /// The findings are in an `async fn`'s body, not in an async block.
    pub is_async_fn: bool,
    /// Where the fn or block starts.
    pub line: usize,
    /// What the router makes of it: `handler for GET /users/{id}`,
    /// `middleware`.
    pub roles: Vec<String>,
    /// The body awaits something besides its blocking calls.
    pub awaits: bool,
    pub hotspots: Vec<Hotspot>,
}

/// One blocking call.
#[derive(Debug, Serialize)]
pub struct Hotspot {
    pub line: usize,
    /// 1-based, like rustc's.
    pub column: usize,
    pub rule: String,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct Skipped {
    pub file: String,
    pub reason: String,
}

/// How to audit.
#[derive(Debug, Default)]
pub struct Options {
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
        path: PathBuf,
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
    pub fn hotspot_count(&self) -> usize {
        self.flagged.iter().map(|f| f.hotspots.len()).sum()
    }
}

impl Flagged {
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
        self.function.rsplit("::").next().unwrap_or(&self.function)
    }
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
            .spawn_scoped(scope, || audit_files(root, &files, &mut configs))
            .expect("the audit thread starts")
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn audit_files(root: &Path, files: &[PathBuf], configs: &mut Configs) -> Result<Report, Error> {
    let mut report = Report {
        files_read: files.len(),
        ..Report::default()
    };
    let mut roles = HashMap::new();
    for path in files {
        let file = display_path(root, path);
        match parse(path) {
            Ok(ast) => {
                find::router_roles(&ast, &mut roles);
                let config = configs.for_file(path)?;
                report.flagged.extend(flag(&file, &ast, config));
            }
            Err(reason) => report.skipped.push(Skipped { file, reason }),
        }
        // Every span of this file has been read. Forgetting them keeps the
        // thread's source map from growing with the tree (and from wrapping
        // around, which would corrupt line numbers, past 4 GiB of code).
        proc_macro2::extra::invalidate_current_thread_spans();
    }
    // Routes may be declared in another file than their handlers.
    for flagged in &mut report.flagged {
        let short = flagged
            .function
            .rsplit("::")
            .next()
            .unwrap_or(&flagged.function);
        flagged.roles = roles.get(short).cloned().unwrap_or_default();
    }
    report
        .flagged
        .sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    Ok(report)
}

/// Reads, measures and parses one file; the reason it was skipped
/// otherwise.
fn parse(path: &Path) -> Result<syn::File, String> {
    let text = std::fs::read_to_string(path).map_err(|error| error.to_string())?;
    if let Some(depth) = depth::nesting(&text).filter(|depth| *depth > depth::LIMIT) {
        return Err(format!(
            "nested too deeply to parse (depth {depth}, limit {})",
            depth::LIMIT
        ));
    }
    syn::parse_file(&text).map_err(|error| {
        let at = error.span().start();
        format!("{}:{}: {error}", at.line, at.column + 1)
    })
}

/// The bodies of one parsed file that block, with their hotspots.
fn flag(file: &str, ast: &syn::File, config: &Config) -> Vec<Flagged> {
    find::async_bodies(ast)
        .into_iter()
        .filter_map(|body| {
            let hotspots: Vec<Hotspot> = lanes_check::scan(&body.block, Scope::Async, config)
                .into_iter()
                .map(|finding| {
                    let at = finding.start.start();
                    Hotspot {
                        line: at.line,
                        column: at.column + 1,
                        rule: finding.rule,
                        message: finding.message,
                    }
                })
                .collect();
            (!hotspots.is_empty()).then(|| Flagged {
                file: file.to_owned(),
                roles: Vec::new(),
                awaits: lanes_check::awaits(&body.block),
                function: body.function,
                is_async_fn: body.is_async_fn,
                line: body.line,
                hotspots,
            })
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

fn display_path(root: &Path, path: &Path) -> String {
    let relative = path.strip_prefix(root).unwrap_or(path);
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}
