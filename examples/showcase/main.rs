//! A small axum service in which every route runs on the lane that fits its
//! work (the routes are in `service.rs`). Run it with
//! `cargo run --release --bin showcase`, then try the `curl` commands it
//! prints; the README shows what they answer.
//!
//! Set `LANES_SHOWCASE_ADDR` to listen elsewhere than 127.0.0.1:3000 (port
//! 0 picks a free one; the first line printed names it), and
//! `LANES_SHOWCASE_DATA` to keep its data elsewhere than the system's
//! temporary folder.
//!
//! At SIGTERM or Ctrl-C it stops accepting, and at once, side by side, lets
//! the open requests finish and the running exports end, each for at most
//! [`DRAIN_DEADLINE`]; exports not yet started stay queued, and those still
//! running then are released, so that the next start resumes them at once.
//! Then it exits with status 0. A second signal ends it at once.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use lanes_showcase::Showcase;

/// How long the open requests, and apart from them the running exports,
/// may take to finish once a stop is asked for.
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "showcase: cannot start the tokio runtime");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(serve());
    // An export released at the deadline keeps its blocking thread until
    // its fn returns; that must not hold the exit (the next start resumes
    // the job).
    runtime.shutdown_timeout(Duration::from_secs(1));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "showcase: stopped");
            ExitCode::FAILURE
        }
    }
}

/// Prints the address, the `curl` commands to try and the dashboard's
/// address on stdout.
fn announce(addr: SocketAddr, data: &Path) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "lanes showcase listening on http://{addr}, data in {}",
        data.display()
    )?;
    for command in lanes_showcase::curl_commands(&addr.to_string()) {
        writeln!(out, "  {command}")?;
    }
    writeln!(
        out,
        "and open the live dashboard: http://{addr}/lanes/dashboard"
    )?;
    out.flush()
}

async fn serve() -> Result<(), Box<dyn std::error::Error>> {
    let data = std::env::var_os("LANES_SHOWCASE_DATA")
        .map_or_else(|| std::env::temp_dir().join("lanes-showcase"), Into::into);
    let showcase = Showcase::open(data.clone()).await?;
    let workers = showcase.start_workers().await?;
    let addr = std::env::var("LANES_SHOWCASE_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let addr = listener.local_addr()?;
    // Listening for SIGTERM before the address is announced: a stop asked
    // for at any time after that is graceful.
    let shutdown = lanes::shutdown_signal();
    tracing::info!(
        "showcase: listening on http://{addr}, data in {}",
        data.display()
    );
    if let Err(error) = announce(addr, &data) {
        // `println!` would panic here and take the service down with the
        // reader of its output (`showcase | head -1`, a closed pipe).
        tracing::warn!(%error, "showcase: cannot print the commands to try; serving anyway");
    }
    let draining = lanes_showcase::serve_until(listener, showcase.router(), shutdown).await;
    let stopping = Instant::now();
    // The workers stop claiming at once rather than after the HTTP drain.
    let (drained, ()) = tokio::join!(
        draining.finish(DRAIN_DEADLINE),
        workers.shutdown(DRAIN_DEADLINE)
    );
    tracing::info!(
        "showcase: stopped in {:.1} s: {} of {} open connections drained, {} closed at the deadline; workers stopped",
        stopping.elapsed().as_secs_f64(),
        drained.open - drained.left,
        drained.open,
        drained.left,
    );
    Ok(())
}
