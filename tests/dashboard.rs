//! The dashboard in a real browser: headless Chromium, driven over
//! WebDriver (chromedriver), loads the page from a live service with real
//! lanes and jobs, shows their figures, and retries a dead job when its
//! button is clicked. `.ci/run` installs Debian's `chromium` and
//! `chromium-driver`; a machine without them skips the test aloud, except
//! under `CI=true`, where it fails.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use fantoccini::{Client, ClientBuilder, Locator};
use lanes::jobs::{JobState, NewJob, Registry, Store, Workers};
use serde_json::json;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// Listed among the schedules; no worker of the test runs it.
#[lanes::background(every = "1h", queue = "maintenance")]
async fn prune_sessions() {}

#[lanes::blocking]
fn report() -> String {
    std::thread::sleep(Duration::from_millis(5));
    "report".to_owned()
}

/// chromedriver on a free port, stopped with the test.
struct Driver(Child, u16);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts chromedriver, or says why the test cannot run: a skip said
/// aloud, or under `CI=true` a failure.
fn chromedriver() -> Option<Driver> {
    if !std::path::Path::new(CHROMEDRIVER).exists() || !std::path::Path::new(CHROMIUM).exists() {
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!(
                "CI=true but {CHROMEDRIVER} or {CHROMIUM} is missing: the browser test must run in CI (apt-get install chromium chromium-driver)"
            );
        }
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: the dashboard's browser test; install Debian's chromium and chromium-driver to run it"
        );
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    Some(Driver(child, port))
}

/// A headless Chromium session; the flags keep it from reaching out to a
/// network this machine does not have.
async fn browser(driver: &Driver) -> Client {
    let profile = std::env::temp_dir().join(lanes_tests::stores::unique("lanes_chromium"));
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1400,1100",
                format!("--user-data-dir={}", profile.display()),
            ],
        },
    });
    let serde_json::Value::Object(capabilities) = capabilities else {
        unreachable!("an object")
    };
    let url = format!("http://127.0.0.1:{}", driver.1);
    let started = Instant::now();
    loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&url)
            .await
        {
            Ok(client) => return client,
            // chromedriver takes a moment to listen.
            Err(_) if started.elapsed() < Duration::from_secs(20) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("no WebDriver session at {url}: {error}"),
        }
    }
}

/// The text of the first element `css` finds, once `until` accepts it
/// (the page updates every second); panics with what it last saw.
async fn text_when(client: &Client, css: &str, until: impl Fn(&str) -> bool) -> String {
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < Duration::from_secs(15) {
        if let Ok(element) = client.find(Locator::Css(css)).await {
            let text = element.text().await.unwrap_or_default();
            if until(&text) {
                return text;
            }
            last = Some(text);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("`{css}` never showed what was expected; it last showed {last:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_live_figures_and_retries_a_dead_job() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let store = Store::memory(1_000);
    let workers = Workers::start(
        store.clone(),
        Registry::new().register("charge", lanes_tests::charge_declined_once),
        lanes_tests::fast_workers(),
    )
    .unwrap();
    let app = Router::new().route("/report", get(report)).nest(
        "/ops",
        lanes::Dashboard::new()
            .jobs(store.clone())
            .with_actions()
            .router(),
    );
    let base = format!("http://{}", lanes_tests::serve(app).await);
    for _ in 0..3 {
        let answer = reqwest::get(format!("{base}/report")).await.unwrap();
        assert_eq!(answer.text().await.unwrap(), "report");
    }
    let dead = store
        .enqueue(NewJob::new("charge", json!("4242")).max_attempts(1))
        .await
        .unwrap();
    for _ in 0..2 {
        store
            .enqueue(NewJob::new("export", json!(null)).queue("exports"))
            .await
            .unwrap();
    }
    while store.get(dead).await.unwrap().unwrap().state != JobState::Dead {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let client = browser(&driver).await;
    client.goto(&format!("{base}/ops")).await.unwrap();
    text_when(&client, "#status", |text| text == "live").await;

    // The lanes, the handler's calls, the queues and the dead job, as the
    // service counted them.
    text_when(&client, r#"[data-lane="blocking"] .capacity"#, |text| {
        text.starts_with("0 of ")
    })
    .await;
    text_when(&client, r#"tr[data-name$="::report"] .calls"#, |text| {
        text == "3"
    })
    .await;
    text_when(&client, r#"tr[data-name$="::report"] .run-p50"#, |text| {
        text.ends_with(" ms")
    })
    .await;
    text_when(&client, r#"tr[data-queue="exports"] .queued"#, |text| {
        text == "2"
    })
    .await;
    text_when(&client, r#"tr[data-queue="default"] .dead"#, |text| {
        text == "1"
    })
    .await;
    let dead_row = format!(r#"#dead tr[data-job="{dead}"]"#);
    text_when(&client, &dead_row, |text| {
        text.contains("card 4242 was declined")
    })
    .await;
    text_when(
        &client,
        r#"tr[data-schedule$="prune_sessions"] .schedule"#,
        |text| text == "every 1h",
    )
    .await;
    let chart = client.find(Locator::Css("#lag-chart polyline")).await;
    assert!(chart.is_ok(), "the lag chart has a line");
    let screenshot = client.screenshot().await.unwrap();
    std::fs::write(
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png"),
        screenshot,
    )
    .unwrap();

    client
        .find(Locator::Css(&format!("{dead_row} button.retry")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    text_when(&client, "#notice", |text| text == "retried").await;
    let started = Instant::now();
    while store.get(dead).await.unwrap().unwrap().state != JobState::Succeeded {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the retried job did not run again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        store.get(dead).await.unwrap().unwrap().result,
        Some(json!("charged 4242"))
    );
    // Gone from the dead, and counted as this process's success.
    text_when(&client, "#dead tbody", |text| text == "none").await;
    text_when(&client, r#"tr[data-kind="charge"] .succeeded"#, |text| {
        text == "1"
    })
    .await;
    client.close().await.unwrap();
    workers.shutdown(Duration::from_secs(5)).await;
}

/// Read-only by default: no route changes a job, and the page is told so.
#[tokio::test]
async fn a_dashboard_without_actions_changes_nothing() {
    let store = Store::memory(100);
    let id = store
        .enqueue(NewJob::new("export", json!(null)))
        .await
        .unwrap();
    let app = Router::new().nest("/ops", lanes::Dashboard::new().jobs(store.clone()).router());
    let base = format!("http://{}/ops", lanes_tests::serve(app).await);
    let client = reqwest::Client::new();
    for request in [
        client.post(format!("{base}/jobs/{id}/cancel")),
        client.post(format!("{base}/jobs/{id}/retry")),
        client.delete(format!("{base}/jobs/{id}")),
    ] {
        let status = request.send().await.unwrap().status();
        assert!(status.is_client_error(), "{status}");
    }
    assert_eq!(
        store.get(id).await.unwrap().unwrap().state,
        JobState::Queued
    );
    let snapshot: serde_json::Value = reqwest::get(format!("{base}/snapshot"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(snapshot["actions"], false);
    assert_eq!(snapshot["jobs"]["queues"][0]["queued"], 1);
    let page = reqwest::get(&base).await.unwrap();
    let policy = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(policy.starts_with("default-src 'none'"), "{policy}");
    assert!(page.text().await.unwrap().contains("<title>lanes</title>"));
}
