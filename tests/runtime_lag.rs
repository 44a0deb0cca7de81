//! The event-loop lag: a runtime whose only thread is held shows the hold as
//! lag, in `lanes::stats()` and in the `metrics` histogram, which keeps the
//! spike after later beats come on time. A
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

    // More beats, on time: a scrape now still sees the spike.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let rendered = metrics.render();
    let figure = |prefix: &str| -> f64 {
        rendered
            .lines()
            .find_map(|line| line.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in\n{rendered}"))
            .trim()
            .parse()
            .unwrap()
    };
    let most = figure("lanes_event_loop_lag_seconds{quantile=\"1\"}");
    assert!(most * 1e3 >= 150.0, "the spike is kept: {most} s");
    let beats = figure("lanes_event_loop_lag_seconds_count");
    assert!(beats >= 3.0, "every beat is recorded: {beats}");
}
