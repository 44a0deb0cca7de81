//! `cargo lanes audit [PATH]`: lists the blocking calls in async code, and
//! exits with 1 when there are any outside start-up code, so that it can
//! gate CI.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "cargo lanes", bin_name = "cargo lanes", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Report every blocking call inside an `async fn`, an async block or
    /// closure, with file:line:column, the rule, the enclosing fn and the fix.
    Audit {
        /// The crate or workspace folder to read.
        #[arg(default_value = ".")]
        path: PathBuf,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// Also print the attribute (or helper) each flagged fn should use.
        #[arg(long)]
        fix_suggestions: bool,
        /// Also report test code: `#[test]` fns, `#[cfg(test)]` items, and
        /// files under `tests/`, `benches/` and `examples/`.
        #[arg(long)]
        include_tests: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Text,
    Json,
    Sarif,
}

fn main() -> ExitCode {
    // cargo runs `cargo-lanes lanes audit ..` for `cargo lanes audit ..`.
    let args = std::env::args_os()
        .enumerate()
        .filter(|(i, arg)| !(*i == 1 && arg == "lanes"))
        .map(|(_, arg)| arg);
    let Command::Audit {
        path,
        format,
        fix_suggestions,
        include_tests,
    } = Cli::parse_from(args).command;
    if !path.is_dir() {
        eprintln!("error: {} is not a folder", path.display());
        return ExitCode::from(2);
    }
    let options = lanes_audit::Options {
        include_tests,
        // As the macros read it; set but empty is taken as unset, as a
        // shell's `LANES_CONF_DIR= cargo ..` means.
        config_dir: std::env::var_os(lanes_check::DIR_ENV)
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from),
    };
    let report = match lanes_audit::audit(&path, &options) {
        Ok(report) => report,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(2);
        }
    };
    let rendered = match format {
        Format::Text => lanes_audit::output::text(&report, fix_suggestions),
        Format::Json => lanes_audit::output::json(&report, fix_suggestions),
        Format::Sarif => lanes_audit::output::sarif(&report),
    };
    let status = if report.error_count() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    };
    match std::io::stdout().lock().write_all(rendered.as_bytes()) {
        // `cargo lanes audit | head` closed the pipe: what was wanted was read.
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("error: cannot write the report: {error}");
            ExitCode::from(2)
        }
        _ => status,
    }
}
