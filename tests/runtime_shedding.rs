//! Load shedding on the CPU lane: at ten times its capacity, the requests
//! that cannot enter the lane within its maximum wait are answered `503`
//! with `Retry-After`, the lane never holds more than its bound, and once
//! the load stops every request is served again. A binary of its own: it
//! installs the configuration.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use lanes::Lane;
use lanes_tests::Gate;

const CAPACITY: usize = 4;

/// Holds every admitted call until the test opens it, so that the lane is
/// full for exactly as long as the test wants.
static GATE: Gate = Gate::closed();

#[lanes::cpu_bound]
fn render() -> &'static str {
    GATE.pass();
    "rendered"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_capacity_requests_are_shed_with_503_and_the_service_recovers() {
    lanes::Config::new()
        .cpu_threads(2)
        .cpu_admission(CAPACITY)
        .cpu_max_wait(Duration::from_millis(50))
        .retry_after(Duration::from_secs(2))
        .install()
        .unwrap();
    let app = Router::new()
        .route("/render", get(render))
        .layer(lanes::ShedLayer::new());
    let addr = lanes_tests::serve(app).await;
    let client = reqwest::Client::new();

    // Watches the lane while the load runs; opens the gate once every
    // request beyond the capacity has been shed.
    let watcher = tokio::spawn(async move {
        let mut most_admitted = 0;
        loop {
            let stats = lanes::stats();
            most_admitted = most_admitted.max(stats.lane(Lane::CpuBound).admitted.unwrap());
            if stats
                .handler("render")
                .is_some_and(|h| h.shed == 9 * CAPACITY as u64)
            {
                GATE.set(true);
                return most_admitted;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });

    let load = (0..10 * CAPACITY).map(|_| {
        let request = client.get(format!("http://{addr}/render")).send();
        async move {
            let response = request.await.unwrap();
            let retry_after = response.headers().get("retry-after").cloned();
            (
                response.status().as_u16(),
                retry_after,
                response.text().await.unwrap(),
            )
        }
    });
    let responses = futures::future::join_all(load).await;

    let served = responses
        .iter()
        .filter(|(status, ..)| *status == 200)
        .count();
    let shed: Vec<_> = responses
        .iter()
        .filter(|(status, ..)| *status == 503)
        .collect();
    assert_eq!(
        (served, shed.len()),
        (CAPACITY, 9 * CAPACITY),
        "{responses:?}"
    );
    for (_, retry_after, body) in &shed {
        assert_eq!(retry_after.as_ref().unwrap(), "2");
        assert_eq!(body, "the server is at capacity; retry after 2 s\n");
    }
    let most_admitted = watcher.await.unwrap();
    assert!(
        most_admitted <= CAPACITY,
        "the lane held {most_admitted} calls"
    );

    // The load is over: every request is served again, and nothing waits.
    for _ in 0..2 * CAPACITY {
        let response = client
            .get(format!("http://{addr}/render"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // The CPU lane answers its caller before it records the call, so the
    // last calls' figures may land just after their answers.
    let settled = tokio::time::timeout(Duration::from_secs(5), async {
        while lanes::stats().handler("render").unwrap().in_flight > 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        settled.is_ok(),
        "calls still in flight 5 s after their answers"
    );
    let stats = lanes::stats();
    let handler = stats.handler("render").unwrap();
    assert_eq!(
        (
            handler.completed,
            handler.shed,
            handler.queued,
            handler.in_flight
        ),
        (3 * CAPACITY as u64, 9 * CAPACITY as u64, 0, 0)
    );
    assert_eq!(stats.lane(Lane::CpuBound).admitted, Some(0));

    // Outside a request served under `ShedLayer` (a background task, a
    // plain caller) nobody can be answered 503: past the wait, calls keep
    // waiting their turn.
    GATE.set(false);
    let calls: Vec<_> = (0..10 * CAPACITY).map(|_| tokio::spawn(render())).collect();
    while lanes::stats().handler("render").unwrap().queued < 9 * CAPACITY as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Well past the 50 ms maximum wait.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(calls.iter().all(|call| !call.is_finished()));
    GATE.set(true);
    for call in calls {
        assert_eq!(call.await.unwrap(), "rendered");
    }
    assert_eq!(
        lanes::stats().handler("render").unwrap().shed,
        9 * CAPACITY as u64
    );
}
