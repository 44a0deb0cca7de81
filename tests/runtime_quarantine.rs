//! Quarantine, on a runtime with 2 workers: a route caught blocking is
//! moved to blocking-pool threads, so that `/health` answers while more of
//! its blocking calls are in flight than there are workers; once probes on
//! the event loop run clean it comes back. A binary of its own: it installs
//! the configuration.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use lanes::{Quarantine, RouteMode};
use lanes_tests::Gate;

const ROUTE: &str = "GET /vendor";
/// More calls in flight at once than the runtime has workers.
const IN_FLIGHT: usize = 6;

/// What the vendor call does: sleep 50 ms, wait at the gate, or answer at
/// once (fixed).
static BEHAVES: AtomicU8 = AtomicU8::new(SLEEPS);
const SLEEPS: u8 = 0;
const WAITS: u8 = 1;
const FIXED: u8 = 2;
static GATE: Gate = Gate::closed();
static INSIDE: AtomicUsize = AtomicUsize::new(0);

/// An unannotated handler whose library call blocks the thread it runs on.
async fn vendor() -> &'static str {
    match BEHAVES.load(Ordering::Acquire) {
        SLEEPS => std::thread::sleep(Duration::from_millis(50)),
        WAITS => {
            INSIDE.fetch_add(1, Ordering::AcqRel);
            GATE.pass();
            INSIDE.fetch_sub(1, Ordering::AcqRel);
        }
        _ => {}
    }
    "rates"
}

async fn health() -> &'static str {
    "ok"
}

fn route() -> lanes::RouteStats {
    lanes::stats()
        .route(ROUTE)
        .expect("the route is watched")
        .clone()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{what} did not happen within 20 s: {:?}",
        lanes::stats().routes
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_caught_blocking_leaves_the_event_loop_and_comes_back_once_clean() {
    lanes::Config::new()
        .quarantine(Some(
            Quarantine::new()
                .after(2)
                .probe_every(Duration::from_secs(2))
                .clean_probes(2),
        ))
        .install()
        .unwrap();
    let app = Router::new()
        .route("/vendor", get(vendor))
        .route("/health", get(health))
        .layer(lanes::Watch::new());
    let addr = lanes_tests::serve(app).await;
    let client = reqwest::Client::new();
    let get = |path: &'static str| {
        let client = client.clone();
        async move {
            let response = client
                .get(format!("http://{addr}{path}"))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
            response.text().await.unwrap()
        }
    };

    // Two calls that block the event loop, one after the other.
    for _ in 0..2 {
        assert_eq!(get("/vendor").await, "rates");
    }
    assert_eq!(route().mode, RouteMode::Quarantined);
    assert_eq!((route().slow_polls, route().quarantines), (2, 1));

    // Six blocking calls at once, on a runtime of two workers: only off the
    // event loop can they all be inside the vendor call together.
    BEHAVES.store(WAITS, Ordering::Release);
    let probes_before = route().probes;
    let calls: Vec<_> = (0..IN_FLIGHT)
        .map(|_| tokio::spawn(get("/vendor")))
        .collect();
    until("every call inside the vendor call", || {
        INSIDE.load(Ordering::Acquire) == IN_FLIGHT
    })
    .await;
    assert_eq!(get("/health").await, "ok");
    assert_eq!(INSIDE.load(Ordering::Acquire), IN_FLIGHT);
    // A slow machine may have let one probe due meanwhile run on a worker.
    let now = route();
    assert_eq!(
        now.quarantined_calls + (now.probes - probes_before),
        IN_FLIGHT as u64
    );
    assert!(now.quarantined_calls >= IN_FLIGHT as u64 - 1, "{now:?}");
    GATE.set(true);
    for call in calls {
        assert_eq!(call.await.unwrap(), "rates");
    }

    // Fixed: probes, one per `probe_every`, run clean on the event loop,
    // and after two of them the route is back.
    BEHAVES.store(FIXED, Ordering::Release);
    let probes_before = route().probes;
    for _ in 0..300 {
        if route().mode == RouteMode::EventLoop {
            break;
        }
        assert_eq!(get("/vendor").await, "rates");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let route_now = route();
    assert_eq!(route_now.mode, RouteMode::EventLoop, "{route_now:?}");
    assert_eq!(route_now.probes - probes_before, 2, "{route_now:?}");
    let off_the_loop = route_now.quarantined_calls;
    assert_eq!(get("/vendor").await, "rates");
    assert_eq!(
        route().quarantined_calls,
        off_the_loop,
        "the call ran on the event loop"
    );
}
