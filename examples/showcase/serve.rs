//! Serving the router over HTTP/1.1 so that clients cannot hold the
//! service: a deadline for each request's head (which is also the idle
//! keep-alive timeout), a bound on the open connections, and a drain that
//! ends at a deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// How long a client has to send a request's head: on a new connection, and
/// between requests on a kept-alive one, so an idle connection is closed
/// after it too.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The most connections served at once when the open-file limit cannot be
/// read.
const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// Accepts connections until `shutdown` resolves, then stops accepting and
/// returns the connections still open, to be drained.
pub async fn serve_until(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> Draining {
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    // HTTP/1 only: the sniffing of an HTTP/2 preface has no timeout, so a
    // client that sends nothing would hold its connection for ever; curl
    // and browsers speak HTTP/1.1 to a plain `http://` address.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let builder = Arc::new(builder);
    let max_connections = max_connections();
    let connections = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    let service = TowerToHyperService::new(router);
    tokio::pin!(shutdown);
    loop {
        // Past the bound new connections wait in the kernel's backlog
        // instead of failing `accept` for want of file descriptors.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = connections.clone().acquire_owned() => {
                permit.expect("the connections' semaphore is never closed")
            }
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: the next accept may well succeed.
                    tracing::warn!(%error, "showcase: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let builder = builder.clone();
        let service = service.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(error, "showcase: a connection ended with an error");
            }
            drop(permit);
        });
    }
    Draining {
        graceful,
        connections,
        max_connections,
    }
}

/// The connections open when the service stopped accepting.
#[derive(Debug)]
pub struct Draining {
    graceful: GracefulShutdown,
    connections: Arc<Semaphore>,
    max_connections: usize,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Connections open when the drain began.
    pub open: usize,
    /// Connections still open at the deadline, closed with the process.
    pub left: usize,
}

impl Draining {
    /// Lets each open connection finish the request it is serving (idle
    /// ones close at once), for at most `deadline`.
    pub async fn finish(self, deadline: Duration) -> Drained {
        let open_now = || self.max_connections - self.connections.available_permits();
        let open = open_now();
        let left = match tokio::time::timeout(deadline, self.graceful.shutdown()).await {
            Ok(()) => 0,
            // Counted by the permits their tasks still hold.
            Err(_) => open_now(),
        };
        Drained { open, left }
    }
}

/// Half the open-file limit, so that the databases, the reports and the
/// log keep file descriptors to spare.
fn max_connections() -> usize {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `getrlimit` only writes the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            let half = usize::try_from(limit.rlim_cur / 2).unwrap_or(usize::MAX);
            return half.clamp(16, 16_384);
        }
    }
    DEFAULT_MAX_CONNECTIONS
}
