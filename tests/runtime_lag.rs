//! The event-loop lag gauge: a runtime whose only thread is held shows the
//! hold as lag, in `lanes::stats()` and through the `metrics` facade. A
//! binary of its own: the heartbeat runs on the first runtime that calls a
//! lane fn, and the recorder is global.

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;

#[lanes::io_bound]
async fn ping() -> &'static str {
    "pong"
}

#[tokio::test(flavor = "current_thread")]
async fn a_held_event_loop_shows_as_lag() {
    let metrics = PrometheusBuilder::new().install_recorder().unwrap();
    // The first lane call starts the heartbeat on this runtime.
    assert_eq!(ping().await, "pong");
    tokio::task::yield_now().await;

    // What a blocking call in a handler does: the heartbeat cannot wake.
    std::thread::sleep(Duration::from_millis(200));
    // Parking lets the timer fire: the heartbeat, due first, runs first.
    tokio::time::sleep(Duration::from_millis(1)).await;

    let lag_ms = lanes::stats().event_loop_lag_ms;
    assert!(lag_ms >= 150.0, "lag {lag_ms} ms");
    let rendered = metrics.render();
    let gauge: f64 = rendered
        .lines()
        .find_map(|line| line.strip_prefix("lanes_event_loop_lag_seconds "))
        .unwrap_or_else(|| panic!("no lag gauge in\n{rendered}"))
        .parse()
        .unwrap();
    assert!(
        (gauge * 1e3 - lag_ms).abs() < 0.001,
        "{gauge} s vs {lag_ms} ms"
    );
}
