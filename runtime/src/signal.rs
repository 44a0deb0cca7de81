//! The signal that asks a server to stop: SIGTERM from `kill`, `docker
//! stop` or systemd, SIGINT from Ctrl-C.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

/// Set when [`shutdown_signal`] resolves; [`STOPPED`] wakes the waiters.
static STOPPING: AtomicBool = AtomicBool::new(false);
static STOPPED: Notify = Notify::const_new();

/// Resolves once [`shutdown_signal`] has resolved in this process (at once
/// if it has): the streams that never end by themselves, server-sent
/// events, end then, so that a browser tab does not hold a graceful drain
/// open until its deadline.
pub(crate) async fn stopping() {
    let notified = STOPPED.notified();
    tokio::pin!(notified);
    // Registered before the flag is read, so a signal in between is heard.
    notified.as_mut().enable();
    if !STOPPING.load(Ordering::Acquire) {
        notified.await;
    }
}

/// Resolves at the first SIGTERM or SIGINT (on unix; Ctrl-C elsewhere),
/// logged at `info` with the signal's name: hand it to a server's graceful
/// shutdown, then stop the workers. The event streams lanes serves (a
/// job's `/jobs/{id}/events`, the [`Dashboard`](crate::Dashboard)'s) end
/// then, so that they do not hold the drain open.
///
/// The handlers are installed when it is called within a tokio runtime
/// (else at the first poll), so a signal that arrives before the server
/// first polls the future is not lost: call it before announcing that the
/// service is ready.
///
/// The workers stop claiming at the signal, beside the HTTP drain rather
/// than after it (`axum::serve` drains without a deadline; the showcase's
/// `main.rs` bounds it too):
///
/// ```no_run
/// # async fn run(app: axum::Router, workers: lanes::jobs::Workers) -> std::io::Result<()> {
/// use std::future::IntoFuture;
/// use futures_util::FutureExt;
///
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// let stop = lanes::shutdown_signal().shared();
/// let serving = axum::serve(listener, app).with_graceful_shutdown(stop.clone());
/// let stopping = async {
///     stop.await;
///     workers.shutdown(std::time::Duration::from_secs(10)).await;
/// };
/// let (served, ()) = tokio::join!(serving.into_future(), stopping);
/// served
/// # }
/// ```
///
/// # A second signal stops at once
/// Once a handler is installed the signal no longer ends the process by
/// itself, so a second SIGTERM or SIGINT would otherwise go unheard while a
/// drain hangs. After the first one resolves this future, a second one is
/// logged and ends the process at once with the status a shell reports for
/// that signal (143 for SIGTERM, 130 for SIGINT and Ctrl-C).
///
/// # When a handler cannot be installed
/// The failure is logged as an error and the other signal still works; if
/// neither can be installed, the future never resolves (the signals then
/// keep their default action and end the process). It never panics.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    let installed = tokio::runtime::Handle::try_current()
        .is_ok()
        .then(Listeners::install);
    async move {
        let listeners = installed.unwrap_or_else(Listeners::install);
        stop_at_signals(listeners).await;
    }
}

async fn stop_at_signals(mut listeners: Listeners) {
    let first = listeners.next().await;
    tracing::info!("lanes: {first} received: stopping gracefully; a second signal stops at once");
    STOPPING.store(true, Ordering::Release);
    STOPPED.notify_waiters();
    tokio::spawn(async move {
        let second = listeners.next().await;
        tracing::warn!("lanes: {second} received again: stopping at once");
        std::process::exit(second.exit_status());
    });
}

/// A signal that asks the process to stop.
#[derive(Clone, Copy, Debug)]
enum Stop {
    #[cfg(unix)]
    Terminate,
    Interrupt,
}

impl Stop {
    /// 128 + the signal's number, as a shell reports a process it ended.
    fn exit_status(self) -> i32 {
        match self {
            #[cfg(unix)]
            Stop::Terminate => 143,
            Stop::Interrupt => 130,
        }
    }
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            #[cfg(unix)]
            Stop::Terminate => "SIGTERM",
            #[cfg(unix)]
            Stop::Interrupt => "SIGINT",
            #[cfg(not(unix))]
            Stop::Interrupt => "Ctrl-C",
        })
    }
}

#[cfg(unix)]
struct Listeners {
    terminate: Option<tokio::signal::unix::Signal>,
    interrupt: Option<tokio::signal::unix::Signal>,
}

#[cfg(unix)]
impl Listeners {
    fn install() -> Listeners {
        use tokio::signal::unix::{SignalKind, signal};
        let install = |kind: SignalKind, stop: Stop, other: Stop| {
            signal(kind)
                .inspect_err(|error| {
                    tracing::error!(
                        %error,
                        "lanes: cannot listen for {stop}; only {other} stops the process gracefully"
                    );
                })
                .ok()
        };
        Listeners {
            terminate: install(SignalKind::terminate(), Stop::Terminate, Stop::Interrupt),
            interrupt: install(SignalKind::interrupt(), Stop::Interrupt, Stop::Terminate),
        }
    }

    async fn next(&mut self) -> Stop {
        async fn received(listener: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
            match listener {
                Some(listener) => listener.recv().await,
                None => None,
            }
        }
        tokio::select! {
            Some(()) = received(&mut self.terminate) => Stop::Terminate,
            Some(()) = received(&mut self.interrupt) => Stop::Interrupt,
            // Neither handler could be installed (already logged): the
            // signals keep their default action.
            else => std::future::pending().await,
        }
    }
}

#[cfg(not(unix))]
struct Listeners;

#[cfg(not(unix))]
impl Listeners {
    fn install() -> Listeners {
        Listeners
    }

    async fn next(&mut self) -> Stop {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "lanes: cannot listen for Ctrl-C; the process stops only when killed");
            std::future::pending::<()>().await;
        }
        Stop::Interrupt
    }
}
