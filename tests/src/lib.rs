//! Helpers shared by the integration tests: a real axum server on a free
//! loopback port, a gate that holds lane calls, and a probe of the CPU
//! lane's threads.

use std::net::SocketAddr;
use std::sync::{Arc, Barrier, Condvar, Mutex};
use std::time::Duration;

/// Serves `app` on 127.0.0.1 on a free port, on the current runtime, and
/// returns its address.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    tokio::spawn(async move {
        axum::serve(listener, app)
            .await
            .expect("the test server runs")
    });
    addr
}

/// Runs `threads` CPU-lane calls that can only finish together, so it
/// returns only while the CPU lane has (at least) that many threads free.
/// Panics after 10 s otherwise.
pub async fn cpu_lane_runs_together(threads: usize) {
    let barrier = Arc::new(Barrier::new(threads));
    let calls: Vec<_> = (0..threads)
        .map(|_| {
            let barrier = barrier.clone();
            tokio::spawn(lanes::run_cpu(move || {
                barrier.wait();
            }))
        })
        .collect();
    for call in calls {
        tokio::time::timeout(Duration::from_secs(10), call)
            .await
            .expect("the CPU lane ran every call at once")
            .expect("the call does not panic");
    }
}

/// Holds the pool threads that pass it until a test opens it, so that a
/// lane stays full for exactly as long as the test wants.
#[derive(Debug)]
pub struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
}

impl Gate {
    pub const fn closed() -> Gate {
        Gate {
            open: Mutex::new(false),
            opened: Condvar::new(),
        }
    }

    /// Blocks the calling thread until the gate is open, or 10 s have
    /// passed (a failed test must not hang its runtime's shutdown).
    pub fn pass(&self) {
        let open = self.open.lock().expect("the gate's lock is never poisoned");
        let waited = self
            .opened
            .wait_timeout_while(open, Duration::from_secs(10), |open| !*open);
        drop(waited.expect("the gate's lock is never poisoned"));
    }

    pub fn set(&self, open: bool) {
        *self.open.lock().expect("the gate's lock is never poisoned") = open;
        self.opened.notify_all();
    }
}
