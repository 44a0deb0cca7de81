//! The compile-time cost of the attributes: a generated crate of 300 axum
//! handlers, 100 per lane, built with the attributes and without them, side
//! by side in one run.
//!
//! The generator writes one cargo workspace of two packages into
//! `target/tmp/lanes-compile` (cargo's temporary folder for benches): the
//! same source twice, `attributes` with `#[lanes::io_bound]`,
//! `#[lanes::blocking]` and `#[lanes::cpu_bound]` on its handlers, `plain`
//! without. Both depend on this repository's `lanes` by path and on axum and
//! tokio at the versions of the workspace's `Cargo.lock`, copied beside them.
//! The folder and its target dir are kept between runs, so only the first
//! run builds the dependencies (minutes, never counted).
//!
//! `cargo bench -p lanes-benches -- compile` runs this scenario alone.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use super::{median, targets};

/// Modules of the generated crate; each holds 10 handlers of every lane.
const AREAS: [&str; 10] = [
    "orders", "users", "billing", "catalog", "search", "reports", "images", "auth", "stock",
    "shipping",
];
const PER_LANE: usize = 10;
const HANDLERS: usize = AREAS.len() * PER_LANE * 3;

const CHECK_RUNS: usize = 5;
const BUILD_RUNS: usize = 3;
const EXPAND_RUNS: usize = 3;

/// The two packages of the generated workspace.
const PLAIN: &str = "plain";
const ATTRIBUTES: &str = "attributes";

// ---------------------------------------------------------------- generator

/// The crate's shared helpers: ordinary synchronous code that never blocks.
const HELPERS: &str = r#"//! Helpers shared by every module: plain synchronous code that never blocks.

use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Small,
    Medium,
    Large,
    Huge,
}

impl Kind {
    pub fn of(total: u64) -> Kind {
        match total % 4 {
            0 => Kind::Small,
            1 => Kind::Medium,
            2 => Kind::Large,
            _ => Kind::Huge,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Kind::Small => "small",
            Kind::Medium => "medium",
            Kind::Large => "large",
            Kind::Huge => "huge",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub id: u64,
    pub name: String,
    pub kind: Kind,
    pub total: u64,
    pub checksum: u32,
}

impl Summary {
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(64);
        let _ = write!(
            out,
            "{} #{}: {} ({}), checksum {:08x}",
            self.name,
            self.id,
            self.total,
            self.kind.label(),
            self.checksum
        );
        out
    }
}

pub fn slug(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect()
}

pub fn mix(step: u64, seed: u64) -> u64 {
    (step ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
}

pub fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0u32, |sum, b| sum.rotate_left(5) ^ u32::from(*b))
}

pub fn data_path(area: &str, id: u64) -> String {
    format!("data/{area}/{id}.txt")
}
"#;

/// An `#[io_bound]` handler: awaits a timer and a `tokio::fs` read.
const IO_BOUND: &str = r#"
#[lanes::io_bound]
pub async fn @AREA@_io_@J@(@ARGS@) -> String {
    @ID@
    let mut out = String::with_capacity(128);
    let _ = write!(out, "@AREA@ io @J@ for {}: ", helpers::slug("@AREA@ Item @J@"));
    tokio::time::sleep(Duration::from_millis(id % 3)).await;
    let mut total = 0u64;
    for step in 0..(id % 7 + @J@) {
        total = total.wrapping_add(helpers::mix(step, @SEED@));
    }
    let kind = Kind::of(total);
    let note = match kind {
        Kind::Small => "small",
        Kind::Medium if total % 2 == 0 => "medium, even",
        Kind::Medium => "medium",
        _ => "large",
    };
    let path = helpers::data_path("@AREA@", id);
    let stored = tokio::fs::read_to_string(&path).await.unwrap_or_default();
    let name = format!("@AREA@-@J@-{note}");
    let checksum = helpers::checksum(stored.as_bytes());
    let summary = Summary { id, name, kind, total, checksum };
    out.push_str(&summary.render());
    out
}
"#;

/// A `#[blocking]` handler: reads a file with `std::fs` and formats it.
const BLOCKING: &str = r#"
#[lanes::blocking]
pub fn @AREA@_blocking_@J@(@ARGS@) -> String {
    @ID@
    let path = helpers::data_path("@AREA@", id);
    let stored = std::fs::read_to_string(&path).unwrap_or_default();
    let mut lines = Vec::new();
    for (n, line) in stored.lines().take(@J@ + 4).enumerate() {
        lines.push(format!("{n}: {}", line.trim()));
    }
    let total = lines.iter().map(|l| l.len() as u64).sum::<u64>() + id;
    let kind = Kind::of(total);
    let label = match (kind, lines.is_empty()) {
        (_, true) => "empty",
        (Kind::Small, false) => "short",
        (Kind::Huge, false) => "long",
        _ => "medium",
    };
    let name = format!("@AREA@-report-@J@-{label}");
    let checksum = helpers::checksum(path.as_bytes());
    let summary = Summary { id, name, kind, total, checksum };
    let mut out = summary.render();
    let _ = write!(out, " from {} lines", lines.len());
    out
}
"#;

/// A `#[cpu_bound]` handler: a hashing loop and a histogram.
const CPU_BOUND: &str = r#"
#[lanes::cpu_bound]
pub fn @AREA@_cpu_@J@(@ARGS@) -> String {
    @ID@
    let mut state = id ^ @SEED@;
    let mut histogram = [0u32; 8];
    for step in 0..(2_000 + id % 500) {
        state = helpers::mix(step, state);
        histogram[(state % 8) as usize] += 1;
    }
    let peak = histogram.iter().copied().max().unwrap_or(0);
    let kind = match peak {
        0..=260 => Kind::Small,
        261..=280 => Kind::Medium,
        281..=300 => Kind::Large,
        _ => Kind::Huge,
    };
    let name = helpers::slug(&format!("@AREA@ digest @J@ {}", kind.label()));
    let checksum = helpers::checksum(&state.to_le_bytes());
    let summary = Summary { id, name, kind, total: state, checksum };
    let mut out = summary.render();
    for count in histogram {
        let _ = write!(out, " {count}");
    }
    out
}
"#;

/// One module of the attributes crate: its `use` lines, 10 handlers of each
/// lane (every other one taking `Path<u64>`), and a router for them.
fn module(area: &str, index: usize) -> String {
    let mut out = format!(
        "//! The {area} routes: {PER_LANE} handlers on each lane.\n\n\
         use std::fmt::Write as _;\n\
         use std::time::Duration;\n\n\
         use axum::Router;\n\
         use axum::extract::Path;\n\
         use axum::routing::get;\n\n\
         use crate::helpers::{{self, Kind, Summary}};\n"
    );
    let mut routes = String::new();
    for (lane, template) in [("io", IO_BOUND), ("blocking", BLOCKING), ("cpu", CPU_BOUND)] {
        for j in 0..PER_LANE {
            let takes_id = j % 2 == 0;
            let (args, id) = if takes_id {
                ("Path(id): Path<u64>", String::new())
            } else {
                ("", format!("    let id: u64 = {};\n", j * 7 + 1))
            };
            let seed = (index * 1_000 + j) as u64 * 0x1F3D + 11;
            let handler = template
                .replace("    @ID@\n", &id)
                .replace("@AREA@", area)
                .replace("@J@", &j.to_string())
                .replace("@SEED@", &seed.to_string())
                .replace("@ARGS@", args);
            out.push_str(&handler);
            let path = if takes_id { "/{id}" } else { "" };
            writeln!(
                routes,
                "        .route(\"/{area}/{lane}/{j}{path}\", get({area}_{lane}_{j}))"
            )
            .unwrap();
        }
    }
    write!(
        out,
        "\npub fn router() -> Router {{\n    Router::new()\n{routes}}}\n"
    )
    .unwrap();
    out
}

/// The crate root: the modules, a Router merging theirs, and a server.
fn main_rs() -> String {
    let mods: String = AREAS.iter().map(|a| format!("mod {a};\n")).collect();
    let merges: String = AREAS
        .iter()
        .map(|a| format!("        .merge({a}::router())\n"))
        .collect();
    format!(
        "//! {HANDLERS} axum handlers, {per} per lane, over {n} modules.\n\n\
         mod helpers;\n{mods}\n\
         use axum::Router;\n\n\
         fn router() -> Router {{\n    Router::new()\n{merges}}}\n\n\
         #[tokio::main]\n\
         async fn main() {{\n    \
             let listener = tokio::net::TcpListener::bind(\"127.0.0.1:3000\")\n        \
                 .await\n        \
                 .expect(\"a free port\");\n    \
             axum::serve(listener, router()).await.expect(\"the server runs\");\n\
         }}\n",
        per = HANDLERS / 3,
        n = AREAS.len(),
    )
}

/// The plain twin of an attributes crate's file: each lane attribute's line
/// removed, and `async` written on the sync fns it would have made async.
fn without_attributes(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut make_async = false;
    for line in source.lines() {
        match line.trim() {
            "#[lanes::io_bound]" => continue,
            "#[lanes::blocking]" | "#[lanes::cpu_bound]" => {
                make_async = true;
                continue;
            }
            _ => {}
        }
        if make_async {
            out.push_str(&line.replacen("pub fn ", "pub async fn ", 1));
            make_async = false;
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

/// A TOML basic string holding `path`.
fn toml_path(path: &Path) -> String {
    let text = path.display().to_string();
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Writes the two-package workspace into `root`; returns the lines of the
/// plain crate and of the attributes crate.
fn generate(root: &Path, repo: &Path) -> (usize, usize) {
    let runtime = repo.join("runtime");
    write_workspace(root, "");
    // Same versions as the workspace: cargo only adds the two packages.
    std::fs::copy(repo.join("Cargo.lock"), root.join("Cargo.lock"))
        .expect("copy the workspace's Cargo.lock");
    let mut sources = vec![
        ("main.rs".to_owned(), main_rs()),
        ("helpers.rs".to_owned(), HELPERS.to_owned()),
    ];
    for (i, area) in AREAS.iter().enumerate() {
        sources.push((format!("{area}.rs"), module(area, i)));
    }
    let mut lines = (0, 0);
    for package in [PLAIN, ATTRIBUTES] {
        let src = root.join(package).join("src");
        std::fs::create_dir_all(&src).expect("a generated src folder");
        std::fs::write(
            root.join(package).join("Cargo.toml"),
            format!(
                "[package]\nname = \"{package}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\
                 publish = false\n\n[dependencies]\naxum = \"0.8\"\nlanes = {{ path = {} }}\n\
                 tokio = {{ version = \"1\", features = [\"fs\", \"macros\", \"net\", \
                 \"rt-multi-thread\", \"time\"] }}\n",
                toml_path(&runtime)
            ),
        )
        .expect("write a generated Cargo.toml");
        let mut count = 0;
        for (name, text) in &sources {
            let text = if package == PLAIN {
                without_attributes(text)
            } else {
                text.clone()
            };
            count += text.lines().count();
            write_if_changed(&src.join(name), &text);
        }
        if package == PLAIN {
            lines.0 = count;
        } else {
            lines.1 = count;
        }
    }
    // `cargo rustc` runs the packages' rustc through this, so that only it
    // sees RUSTC_BOOTSTRAP: set for cargo, proc-macro2's build script would
    // see it too and every proc macro and its dependents would be rebuilt.
    let wrapper = root.join("bootstrap-rustc.sh");
    std::fs::write(&wrapper, "#!/bin/sh\nRUSTC_BOOTSTRAP=1 exec \"$@\"\n")
        .expect("write the rustc wrapper");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
            .expect("make the rustc wrapper executable");
    }
    lines
}

/// Writes the workspace's manifest, with `profile` (TOML) after its
/// members.
fn write_workspace(root: &Path, profile: &str) {
    std::fs::write(
        root.join("Cargo.toml"),
        format!(
            "# Generated by benches/compile.rs; rewritten on every run.\n\
             [workspace]\nresolver = \"3\"\nmembers = [\"{PLAIN}\", \"{ATTRIBUTES}\"]\n\n{profile}"
        ),
    )
    .expect("write the generated workspace");
}

/// The profile the README recommends: the macros and the parser they run
/// on, compiled with optimizations in the dev profile (once; the crates
/// that use them stay unoptimized).
const MACRO_PROFILE: &str = "\
[profile.dev.package.lanes-macros]
opt-level = 3
[profile.dev.package.lanes-check]
opt-level = 3
[profile.dev.package.syn]
opt-level = 3
[profile.dev.package.proc-macro2]
opt-level = 3
[profile.dev.package.quote]
opt-level = 3
";

/// Writes `text` unless the file already holds it.
fn write_if_changed(path: &Path, text: &str) {
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return;
    }
    std::fs::write(path, text).expect("write a generated source file");
}

// ---------------------------------------------------------------- measuring

/// How rustc compiles the generated crates themselves (the dependencies are
/// never incremental).
#[derive(Clone, Copy)]
enum Mode {
    /// cargo's default for the dev profile: the crate's last session reused.
    Incremental,
    /// `CARGO_INCREMENTAL=0`: the whole crate compiled again, as CI and
    /// release builds do.
    Full,
}

/// The generated workspace and how to run cargo in it.
struct Generated {
    root: PathBuf,
    cargo: String,
}

impl Generated {
    /// `cargo ARGS` in the workspace, on its own target dir, offline (the
    /// copied lock file names only crates the workspace already fetched).
    fn command(&self, args: &[&str], offline: bool, mode: Mode) -> Command {
        let mut command = Command::new(&self.cargo);
        command
            .args(offline.then_some("--offline"))
            .args(args)
            .current_dir(&self.root)
            .env("CARGO_TARGET_DIR", self.root.join("target"))
            .env("CARGO_TERM_COLOR", "never")
            // Nothing of the caller's may cache or reconfigure the builds.
            .env_remove("RUSTC_WRAPPER")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("RUSTC_BOOTSTRAP")
            .env_remove("LANES_CONF_DIR");
        match mode {
            Mode::Incremental => command.env_remove("CARGO_INCREMENTAL"),
            Mode::Full => command.env("CARGO_INCREMENTAL", "0"),
        };
        command
    }

    /// Runs `command`, panicking with the end of its output on a failure;
    /// returns its wall time and its standard error.
    fn run(&self, mut command: Command) -> (Duration, String) {
        let start = Instant::now();
        let output = command.output().expect("cargo starts");
        let elapsed = start.elapsed();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        if !output.status.success() {
            let lines: Vec<&str> = stderr.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            panic!("{command:?} failed:\n{}", tail.join("\n"));
        }
        (elapsed, stderr)
    }

    /// Runs `command` for its exit status alone.
    fn run_quietly(&self, mut command: Command) -> bool {
        command.output().expect("cargo starts").status.success()
    }

    /// Sets the modification time of every source file of `package` to now,
    /// so that cargo recompiles it (and only it).
    fn touch(&self, package: &str) {
        let src = self.root.join(package).join("src");
        let now = SystemTime::now();
        for entry in std::fs::read_dir(&src).expect("the generated src folder") {
            let path = entry.expect("a src entry").path();
            if path.extension().is_some_and(|e| e == "rs") {
                std::fs::File::options()
                    .write(true)
                    .open(&path)
                    .and_then(|f| f.set_modified(now))
                    .expect("touch a generated file");
            }
        }
    }

    /// Wall time of `cargo SUBCOMMAND -p PACKAGE` after a touch.
    fn timed(&self, subcommand: &str, package: &str, mode: Mode) -> f64 {
        self.touch(package);
        let command = self.command(&[subcommand, "-p", package], true, mode);
        self.run(command).0.as_secs_f64()
    }

    /// rustc's `-Z time-passes` report for `package` after a touch.
    fn time_passes(&self, package: &str) -> Vec<(String, f64)> {
        self.touch(package);
        let args = [
            "rustc",
            "-p",
            package,
            "--profile",
            "check",
            "--",
            "-Z",
            "time-passes",
        ];
        // Full: no earlier session of the crate decides what is redone.
        let mut command = self.command(&args, true, Mode::Full);
        command.env(
            "RUSTC_WORKSPACE_WRAPPER",
            self.root.join("bootstrap-rustc.sh"),
        );
        parse_time_passes(&self.run(command).1)
    }
}

/// The medians of `runs` calls of `measure` on each package, the two
/// alternating (plain first, then attributes first, and so on) so that a
/// change in the machine's load falls on both: `(plain, attributes)`.
fn alternating(runs: usize, mut measure: impl FnMut(&str) -> f64) -> (f64, f64) {
    let (mut plain, mut attributes) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let order = if run % 2 == 0 {
            [PLAIN, ATTRIBUTES]
        } else {
            [ATTRIBUTES, PLAIN]
        };
        for package in order {
            let value = measure(package);
            if package == PLAIN {
                plain.push(value);
            } else {
                attributes.push(value);
            }
        }
    }
    (median(plain), median(attributes))
}

/// The `(pass, seconds)` lines of rustc's `-Z time-passes` output, such as
/// `time:   0.123; rss:   50MB ->   60MB (  +10MB)`, a tab and `expand_crate`; other
/// lines are skipped.
fn parse_time_passes(output: &str) -> Vec<(String, f64)> {
    output
        .lines()
        .filter_map(|line| {
            let rest = line.trim_start().strip_prefix("time:")?;
            let seconds = rest.split(';').next()?.trim().parse::<f64>().ok()?;
            let pass = rest.split_whitespace().last()?;
            Some((pass.to_owned(), seconds))
        })
        .collect()
}

/// The pass that covers macro expansion: `expand_crate` (or
/// `macro_expand_crate`, its name elsewhere), else the longest pass whose
/// name mentions expansion.
fn expansion_pass(passes: &[(String, f64)]) -> Option<String> {
    ["expand_crate", "macro_expand_crate"]
        .iter()
        .find(|name| passes.iter().any(|(p, _)| p == *name))
        .map(|name| (*name).to_owned())
        .or_else(|| {
            passes
                .iter()
                .filter(|(p, _)| p.contains("expand"))
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(p, _)| p.clone())
        })
}

/// One row of the section's table: plain and attributes wall times.
struct Timed {
    what: &'static str,
    plain: f64,
    attributes: f64,
}

impl Timed {
    fn ratio(&self) -> f64 {
        self.attributes / self.plain
    }
}

/// The figures of one profile: each cargo row, and rustc's expansion pass.
struct Measured {
    rows: Vec<Timed>,
    pass: String,
    expand_plain: f64,
    expand_attributes: f64,
}

impl Measured {
    fn per_attribute_ms(&self) -> f64 {
        (self.expand_attributes - self.expand_plain) * 1e3 / HANDLERS as f64
    }

    /// The section's table of these figures.
    fn table(&self, report: &mut String) {
        writeln!(
            report,
            "| measure | plain | attributes | attributes / plain |"
        )
        .unwrap();
        writeln!(report, "|---|---|---|---|").unwrap();
        for row in &self.rows {
            writeln!(
                report,
                "| {} | {:.2} s | {:.2} s | {:.2}x |",
                row.what,
                row.plain,
                row.attributes,
                row.ratio()
            )
            .unwrap();
        }
        writeln!(
            report,
            "| macro expansion (`{}`) | {:.0} ms | {:.0} ms | {:.2} ms per attribute |",
            self.pass,
            self.expand_plain * 1e3,
            self.expand_attributes * 1e3,
            self.per_attribute_ms()
        )
        .unwrap();
    }
}

/// Builds the dependencies under the workspace's current profile (not
/// counted), then times each cargo row and the expansion pass.
fn measured(generated: &Generated) -> Measured {
    // The dependencies (the first time takes minutes) and the crates' first
    // incremental sessions; not counted.
    eprintln!(
        "  building the generated crates and their dependencies in {}…",
        generated.root.display()
    );
    for subcommand in ["check", "build"] {
        let args = [subcommand, "--workspace"];
        let offline = generated.command(&args, true, Mode::Incremental);
        if !generated.run_quietly(offline) {
            // A dependency not fetched yet: let cargo fetch it.
            generated.run(generated.command(&args, false, Mode::Incremental));
        }
    }

    let mut rows = Vec::new();
    for (mode, name) in [(Mode::Incremental, "incremental"), (Mode::Full, "full")] {
        for (subcommand, runs) in [("check", CHECK_RUNS), ("build", BUILD_RUNS)] {
            eprintln!("  cargo {subcommand}, {name}, {runs} runs each…");
            let (plain, attributes) =
                alternating(runs, |package| generated.timed(subcommand, package, mode));
            rows.push(Timed {
                what: match (subcommand, mode) {
                    ("check", Mode::Incremental) => "`cargo check`, incremental (the default)",
                    ("check", Mode::Full) => "`cargo check`, full (`CARGO_INCREMENTAL=0`)",
                    (_, Mode::Incremental) => "`cargo build`, incremental (the default)",
                    (_, Mode::Full) => "`cargo build`, full (`CARGO_INCREMENTAL=0`)",
                },
                plain,
                attributes,
            });
        }
    }

    eprintln!("  -Z time-passes, {EXPAND_RUNS} runs each…");
    // A first run each, not counted, loads the proc macros from disk.
    generated.time_passes(PLAIN);
    generated.time_passes(ATTRIBUTES);
    let mut pass = None;
    let (expand_plain, expand_attributes) = alternating(EXPAND_RUNS, |package| {
        let passes = generated.time_passes(package);
        let name = pass.get_or_insert_with(|| {
            expansion_pass(&passes).unwrap_or_else(|| {
                panic!("no macro expansion pass in rustc's -Z time-passes output: {passes:?}")
            })
        });
        passes
            .iter()
            .find(|(p, _)| p == name)
            .map(|(_, s)| *s)
            .expect("the same passes every run")
    });
    Measured {
        rows,
        pass: pass.expect("at least one run"),
        expand_plain,
        expand_attributes,
    }
}

/// `cargo check` and `cargo build` of the 300-handler crate after a touch,
/// incremental and not, and rustc's macro expansion time, with the
/// attributes and without.
pub(crate) fn compile(report: &mut String) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the workspace root");
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("lanes-compile");
    std::fs::create_dir_all(&root).expect("the generated workspace's folder");
    let (plain_lines, attribute_lines) = generate(&root, &repo);
    assert_eq!(
        attribute_lines - plain_lines,
        HANDLERS,
        "the twins differ by one attribute line a handler"
    );
    let generated = Generated {
        root,
        cargo: std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()),
    };

    let readme = std::fs::read_to_string(repo.join("README.md")).expect("the README");
    assert!(
        readme.contains(MACRO_PROFILE),
        "the README shows the profile this bench measures:\n{MACRO_PROFILE}"
    );
    let defaults = measured(&generated);
    write_workspace(&generated.root, MACRO_PROFILE);
    let profiled = measured(&generated);
    write_workspace(&generated.root, "");
    let Measured { rows, pass, .. } = &defaults;
    let per_attribute_ms = defaults.per_attribute_ms();

    writeln!(report, "## Compile-time cost of the attributes\n").unwrap();
    writeln!(
        report,
        "A generated binary crate of {HANDLERS} axum handlers over {modules} modules with `use` \
         lines ({plain_lines} lines without the attributes, {attribute_lines} with; \
         `benches/compile.rs` writes it): {per} `#[lanes::io_bound] async fn`s awaiting \
         `tokio::time::sleep` and `tokio::fs`, {per} `#[lanes::blocking] fn`s reading a file \
         with `std::fs` and {per} `#[lanes::cpu_bound] fn`s hashing in a loop, each body 20 to \
         22 lines of string building, a loop, a match, a struct literal and calls to the crate's \
         sync helpers, every other one taking a `Path<u64>`, all routed by one `Router`. Its \
         plain twin is the same source with each attribute's line removed and `async` written on \
         the blocking and CPU fns, which is what the attribute makes of them: the two crates have \
         the same signatures, bodies and routes, and the plain one runs the bodies inline (a \
         sync fn and an async wrapper for each would have given the plain crate 200 fns more \
         than the attributes crate's source). Both depend on this repository's `lanes` by path \
         and on axum and tokio at the workspace's `Cargo.lock`, as two packages of one generated \
         workspace with one target dir; the dependencies are built first and not counted. Each \
         time is the wall time of `cargo check -p` or `cargo build -p` (dev profile) after \
         setting the mtime of the crate's {files} `.rs` files to now, median of {CHECK_RUNS} runs \
         for check and {BUILD_RUNS} for build, the two crates alternating: incremental is \
         cargo's default (the crate's previous session reused, as in an edit loop), full is \
         `CARGO_INCREMENTAL=0` (the whole crate compiled, as CI and release builds do). \
         Expansion is rustc's `{pass}` pass, which runs every macro of the crate, read from \
         `CARGO_INCREMENTAL=0 cargo rustc --profile check -- -Z time-passes` (RUSTC_BOOTSTRAP=1 is given to the \
         crate's rustc alone, through `RUSTC_WORKSPACE_WRAPPER`, so that no dependency is \
         rebuilt), median of {EXPAND_RUNS} runs; per attribute is the difference over \
         {HANDLERS}.\n",
        modules = AREAS.len(),
        per = HANDLERS / 3,
        files = AREAS.len() + 2,
    )
    .unwrap();
    defaults.table(report);
    // A cargo target holds in both modes: its row shows both ratios.
    let both = |subcommand: &str, limit: f64| {
        let ratios: Vec<f64> = rows
            .iter()
            .filter(|row| row.what.contains(subcommand))
            .map(Timed::ratio)
            .collect();
        (
            format!("{:.2}x incremental, {:.2}x full", ratios[0], ratios[1]),
            ratios.iter().all(|r| *r <= limit),
        )
    };
    let (check, check_met) = both("cargo check", 1.35);
    let (check_later, check_later_met) = both("cargo check", 1.15);
    let (build, build_met) = both("cargo build", 1.30);
    targets(
        report,
        &[
            (
                "macro expansion under 3 ms per attribute",
                format!("{per_attribute_ms:.2} ms"),
                per_attribute_ms < 3.0,
            ),
            ("`cargo check` at most 1.35x plain", check, check_met),
            (
                "`cargo check` at most 1.15x plain (later goal)",
                check_later,
                check_later_met,
            ),
            (
                "`cargo build` at most 1.30x plain (later goal)",
                build,
                build_met,
            ),
        ],
    );
    writeln!(
        report,
        "### With the README's profile for the macros\n\n\
         The same runs after adding to the generated workspace's `Cargo.toml` the profile the \
         README recommends, which compiles lanes' macros, the rule engine and syn, proc-macro2 \
         and quote with `opt-level = 3` in the dev profile (the dependencies rebuilt first, not \
         counted):\n\n```toml\n{MACRO_PROFILE}```\n"
    )
    .unwrap();
    profiled.table(report);
}
