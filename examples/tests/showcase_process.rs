//! The showcase binary itself, as a deploy runs it: each test starts it on
//! a free port with a data folder of its own, then signals it, kills it,
//! restarts it, or abuses it the way testers did.
#![cfg(unix)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lanes_showcase::{BODY_DEADLINE, EXPORT_RUNS, HEADER_READ_TIMEOUT, JOB_LEASE};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;

/// The binary's drain deadline (`main.rs`).
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);
/// Time a process may take past a deadline: start-up, a 2-core machine
/// shared with other builds.
const MARGIN: Duration = Duration::from_secs(5);
/// The seconds an export spends on each report (`service.rs`).
const EXPORT_SECONDS_PER_REPORT: f64 = 0.5;

/// A running showcase binary.
struct Showcase {
    child: Child,
    /// `127.0.0.1:port`, read from its first line.
    addr: String,
    /// The commands it printed after that line.
    printed: Vec<String>,
    /// Its log (stderr), shown when an assertion fails.
    log: Arc<Mutex<String>>,
    /// Reads the log until the process closes it.
    log_reader: Option<JoinHandle<()>>,
}

/// Half a request head: the server waits for the rest.
const HALF_A_HEAD: &[u8] = b"GET /health HTTP/1.1\r\n";

/// A sign-up's head announcing `length` bytes of body, and its first byte.
fn a_body_begun(length: usize) -> Vec<u8> {
    format!(
        "POST /users HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {length}\r\n\r\n{{"
    )
    .into_bytes()
}

impl Showcase {
    /// A connection to it that has sent `start` and nothing more.
    async fn sent(&self, start: &[u8]) -> TcpStream {
        let mut stream = TcpStream::connect(&self.addr).await.unwrap();
        stream.write_all(start).await.unwrap();
        stream
    }

    /// Starts the binary on `addr`, its log read into `log`, and returns its
    /// stdout unread.
    fn spawn(data: &Path, addr: &str) -> (Showcase, ChildStdout) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_showcase"))
            .env("LANES_SHOWCASE_DATA", data)
            .env("LANES_SHOWCASE_ADDR", addr)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the showcase binary starts");
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = BufReader::new(child.stderr.take().expect("a piped stderr")).lines();
        let written = log.clone();
        let log_reader = tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                let mut log = written.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let stdout = child.stdout.take().expect("a piped stdout");
        let showcase = Showcase {
            child,
            addr: addr.to_owned(),
            printed: Vec::new(),
            log,
            log_reader: Some(log_reader),
        };
        (showcase, stdout)
    }

    /// Starts the binary on a free port, read from its first line.
    async fn start(data: &Path) -> Showcase {
        let (mut showcase, stdout) = Showcase::spawn(data, "127.0.0.1:0");
        let log = showcase.log.clone();
        let mut stdout = BufReader::new(stdout).lines();
        let first = tokio::time::timeout(Duration::from_secs(60), stdout.next_line())
            .await
            .expect("the showcase starts within 60 s")
            .unwrap()
            .unwrap_or_else(|| panic!("the showcase stopped at start:\n{}", log.lock().unwrap()));
        let addr = first
            .strip_prefix("lanes showcase listening on http://")
            .and_then(|rest| rest.split_once(','))
            .map(|(addr, _)| addr.to_owned())
            .unwrap_or_else(|| panic!("the first line names the address: {first}"));
        for _ in lanes_showcase::curl_commands(&addr) {
            let line = stdout.next_line().await.unwrap().expect("a command line");
            showcase.printed.push(line.trim_start().to_owned());
        }
        showcase.addr = addr;
        // Read to its end, as a terminal or a log collector would.
        tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });
        showcase
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    fn terminate(&self) {
        let pid = self.child.id().expect("the showcase is running");
        // SAFETY: `kill` only sends a signal, to our own child.
        let sent = unsafe { libc::kill(i32::try_from(pid).unwrap(), libc::SIGTERM) };
        assert_eq!(sent, 0, "SIGTERM was sent");
    }

    /// Waits for the process to end, at most `limit`, and for the last
    /// lines of its log.
    async fn exit_within(&mut self, limit: Duration) -> ExitStatus {
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => {
                if let Some(reader) = self.log_reader.take() {
                    reader.await.unwrap();
                }
                status.unwrap()
            }
            Err(_) => panic!(
                "the showcase still runs {} s after it was asked to stop; its log:\n{}",
                limit.as_secs(),
                self.log()
            ),
        }
    }

    /// SIGTERM, then exit status 0 within the drain deadline.
    async fn stops_cleanly(&mut self) {
        self.terminate();
        self.exits_cleanly().await;
    }

    /// Exit status 0 within the drain deadline, once asked to stop.
    async fn exits_cleanly(&mut self) {
        let status = self.exit_within(DRAIN_DEADLINE + MARGIN).await;
        assert!(status.success(), "{status}; its log:\n{}", self.log());
    }

    async fn post(&self, client: &reqwest::Client, path: &str) -> (u16, String) {
        let response = client.post(self.url(path)).send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// Enqueues an export and returns its job id.
    async fn export(&self, client: &reqwest::Client, name: &str) -> String {
        let (status, body) = self.post(client, &format!("/exports/{name}")).await;
        assert_eq!(status, 202, "{body}");
        let accepted: serde_json::Value = serde_json::from_str(&body).unwrap();
        accepted["id"].as_str().unwrap().to_owned()
    }

    async fn job(&self, client: &reqwest::Client, id: &str) -> serde_json::Value {
        let response = client
            .get(self.url(&format!("/jobs/{id}")))
            .send()
            .await
            .unwrap();
        response.json().await.unwrap()
    }

    /// Polls the jobs until each is `succeeded`, at most `limit`, and
    /// returns their last status.
    async fn all_succeed(
        &self,
        client: &reqwest::Client,
        ids: &[String],
        limit: Duration,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + limit;
        loop {
            let mut jobs = Vec::new();
            for id in ids {
                jobs.push(self.job(client, id).await);
            }
            if jobs.iter().all(|job| job["state"] == "succeeded") {
                return jobs;
            }
            assert!(
                Instant::now() < deadline,
                "within {} s not every export succeeded: {jobs:#?}\nlog:\n{}",
                limit.as_secs(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until every job is `running`.
    async fn all_running(&self, client: &reqwest::Client, ids: &[String]) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mut states = Vec::new();
            for id in ids {
                states.push(self.job(client, id).await["state"].clone());
            }
            if states.iter().all(|state| state == "running") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the exports did not all start: {states:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A fresh data folder for one test.
fn data_folder(test: &str) -> PathBuf {
    let data = std::env::temp_dir().join(format!(
        "lanes-showcase-process-{}-{test}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&data);
    data
}

/// Writes the reports `report-0` .. `report-{count - 1}`.
async fn write_reports(showcase: &Showcase, client: &reqwest::Client, count: u32) {
    for n in 0..count {
        let (status, body) = showcase.post(client, &format!("/reports/report-{n}")).await;
        assert_eq!(status, 201, "{body}");
    }
}

/// The lines of the exports' run record, as `(event, job id)`.
fn export_runs(data: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(data.join(EXPORT_RUNS))
        .unwrap_or_default()
        .lines()
        .map(|line| {
            let (event, id) = line.split_once(' ').expect("`event id`");
            (event.to_owned(), id.to_owned())
        })
        .collect()
}

/// Each job finished once, and none started again after it finished.
fn assert_each_finished_once(data: &Path, ids: &[String]) {
    let runs = export_runs(data);
    let mut finished = HashSet::new();
    for (event, id) in &runs {
        assert!(
            !finished.contains(id),
            "job {id} ran again after it finished: {runs:?}"
        );
        if event == "finished" {
            finished.insert(id.clone());
        }
    }
    for id in ids {
        assert!(finished.contains(id), "job {id} never finished: {runs:?}");
    }
}

#[tokio::test]
async fn the_binary_prints_the_readme_commands_for_its_address() {
    let data = data_folder("printed");
    let mut showcase = Showcase::start(&data).await;
    // `tests/showcase.rs` checks that this list is the README's session.
    assert_eq!(
        showcase.printed,
        lanes_showcase::curl_commands(&showcase.addr)
    );
    showcase.stops_cleanly().await;
    let log = showcase.log();
    assert!(
        log.contains(&format!("showcase: listening on http://{}", showcase.addr))
            && log.contains(&data.display().to_string()),
        "a start line with the address and the data folder:\n{log}"
    );
    assert!(
        log.contains("SIGTERM received") && log.contains("showcase: stopped in"),
        "the signal and a stop line:\n{log}"
    );
    assert!(
        !log.contains('\x1b'),
        "no colour codes in a piped log:\n{log}"
    );
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn a_closed_stdout_does_not_stop_the_service() {
    let data = data_folder("closed-stdout");
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap().to_string();
    drop(free);
    // Nobody reads what it prints, as with `showcase | head -1`.
    let (mut showcase, stdout) = Showcase::spawn(&data, &addr);
    drop(stdout);
    let client = reqwest::Client::new();
    let started = Instant::now();
    let health = loop {
        match client.get(showcase.url("/health")).send().await {
            Ok(response) => break response.text().await.unwrap(),
            Err(error) => {
                if let Ok(Some(status)) = showcase.child.try_wait() {
                    panic!("it stopped, {status}; its log:\n{}", showcase.log());
                }
                assert!(
                    started.elapsed() < Duration::from_secs(60),
                    "no answer within 60 s: {error}; its log:\n{}",
                    showcase.log()
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(health, "ok\n");
    showcase.stops_cleanly().await;
    let log = showcase.log();
    assert!(
        log.contains("showcase: cannot print the commands to try; serving anyway"),
        "a warning that the commands were not printed:\n{log}"
    );
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn a_sigterm_during_exports_exits_0_by_the_deadline_and_a_restart_finishes_them() {
    let data = data_folder("sigterm");
    let client = reqwest::Client::new();
    let mut showcase = Showcase::start(&data).await;
    write_reports(&showcase, &client, 2).await;
    let finished_first = showcase.export(&client, "first").await;
    showcase
        .all_succeed(
            &client,
            std::slice::from_ref(&finished_first),
            Duration::from_secs(30),
        )
        .await;
    // Enough reports that these exports outlast the drain deadline by more
    // than the process takes to exit after it: a stopped export's thread
    // must not get to finish its run before the process ends.
    let reports = 28;
    let export = Duration::from_secs_f64(f64::from(reports) * EXPORT_SECONDS_PER_REPORT);
    assert!(export > DRAIN_DEADLINE);
    write_reports(&showcase, &client, reports).await;
    let mut released = Vec::new();
    for name in ["second", "third", "fourth"] {
        released.push(showcase.export(&client, name).await);
    }
    showcase.all_running(&client, &released).await;

    showcase.stops_cleanly().await;

    let restarted = Showcase::start(&data).await;
    let mut all = released.clone();
    all.push(finished_first.clone());
    let jobs = restarted
        .all_succeed(&client, &all, JOB_LEASE + export + Duration::from_secs(30))
        .await;
    assert_each_finished_once(&data, &all);
    // The workers released the running exports at the deadline, so the
    // stopped attempt does not count.
    for job in jobs
        .iter()
        .filter(|job| job["id"] != finished_first.as_str())
    {
        assert_eq!(
            job["attempts"], 1,
            "an export released at SIGTERM counts the stopped attempt: {job:#}"
        );
    }
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn sigkill_then_a_restart_resumes_the_exports() {
    let data = data_folder("sigkill");
    let client = reqwest::Client::new();
    let mut showcase = Showcase::start(&data).await;
    write_reports(&showcase, &client, 4).await;
    let mut ids = Vec::new();
    for name in ["one", "two", "three"] {
        ids.push(showcase.export(&client, name).await);
    }
    showcase.all_running(&client, &ids).await;
    showcase.child.kill().await.unwrap();

    let restarted = Showcase::start(&data).await;
    // A client of its own: the restart may get the killed process's port,
    // and a connection pooled to the dead one would be reset.
    let client = reqwest::Client::new();
    restarted
        .all_succeed(&client, &ids, JOB_LEASE + Duration::from_secs(30))
        .await;
    assert_each_finished_once(&data, &ids);
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn a_second_sigterm_stops_at_once() {
    let data = data_folder("second-signal");
    let mut showcase = Showcase::start(&data).await;
    // Holds the drain until the header timeout.
    let _slow_head = showcase.sent(HALF_A_HEAD).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    showcase.terminate();
    tokio::time::sleep(Duration::from_millis(500)).await;
    showcase.terminate();
    let status = showcase.exit_within(HEADER_READ_TIMEOUT / 2).await;
    assert_eq!(
        status.code(),
        Some(143),
        "the status of a process SIGTERM ended"
    );
    assert!(
        showcase.log().contains("SIGTERM received again"),
        "{}",
        showcase.log()
    );
    let _ = std::fs::remove_dir_all(&data);
}

/// A browser tab on the dashboard, or a client following a job, holds a
/// stream that never ends by itself: it ends at SIGTERM, so the drain
/// closes nothing at its deadline.
#[tokio::test]
async fn event_streams_end_at_sigterm_and_hold_nothing_open() {
    let data = data_folder("event-streams");
    let mut showcase = Showcase::start(&data).await;
    let client = reqwest::Client::new();
    // An export that outlasts the drain: its stream would follow it.
    write_reports(&showcase, &client, 25).await;
    let id = showcase.export(&client, "weekly").await;
    let mut streams = Vec::new();
    for path in [
        "/lanes/dashboard/events".to_owned(),
        format!("/jobs/{id}/events"),
    ] {
        let mut stream = client.get(showcase.url(&path)).send().await.unwrap();
        assert_eq!(stream.status(), 200, "{path}");
        // The first event: the stream is open.
        assert!(stream.chunk().await.unwrap().is_some(), "{path}");
        streams.push((path, stream));
    }
    showcase.terminate();
    for (path, mut stream) in streams {
        while let Some(chunk) = stream.chunk().await.unwrap_or(None) {
            assert!(!chunk.is_empty(), "{path}");
        }
    }
    showcase.exits_cleanly().await;
    assert!(
        showcase.log().contains(", 0 closed at the deadline"),
        "{}",
        showcase.log()
    );
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn a_slow_client_does_not_hold_the_shutdown() {
    let data = data_folder("slow-client");
    let mut showcase = Showcase::start(&data).await;
    // Half a request head, then a byte a second; and a body that trickles
    // in the same way.
    let mut slow_head = showcase.sent(HALF_A_HEAD).await;
    let mut slow_body = showcase.sent(&a_body_begun(1000)).await;
    let trickle = tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let head = slow_head.write_all(b"x").await;
            let body = slow_body.write_all(b" ").await;
            if head.is_err() && body.is_err() {
                break;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    showcase.stops_cleanly().await;
    trickle.abort();
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn half_open_and_idle_connections_neither_stop_health_nor_stay_open() {
    let data = data_folder("half-open");
    let mut showcase = Showcase::start(&data).await;
    // A kept-alive connection that goes idle after one request.
    let mut idle = TcpStream::connect(&showcase.addr).await.unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    while !answer.ends_with(b"\r\n\r\nok\n") {
        let mut chunk = [0; 256];
        let read = idle.read(&mut chunk).await.unwrap();
        assert_ne!(read, 0, "the answer to a kept-alive request ends early");
        answer.extend_from_slice(&chunk[..read]);
    }
    let opened = Instant::now();
    let mut half_open = Vec::new();
    for _ in 0..300 {
        let mut stream = TcpStream::connect(&showcase.addr).await.unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nhost")
            .await
            .unwrap();
        half_open.push(stream);
    }
    let client = reqwest::Client::new();
    let health = tokio::time::timeout(HEADER_READ_TIMEOUT / 2, async {
        client
            .get(showcase.url("/health"))
            .send()
            .await?
            .text()
            .await
    })
    .await
    .expect("`/health` answers while 300 connections are half open")
    .unwrap();
    assert_eq!(health, "ok\n");
    let mut open = 0;
    for stream in &mut half_open {
        let mut rest = Vec::new();
        // An end of file or a reset: either way the server closed it.
        let read = tokio::time::timeout_at(
            (opened + HEADER_READ_TIMEOUT + MARGIN).into(),
            stream.read_to_end(&mut rest),
        )
        .await;
        open += usize::from(read.is_err());
    }
    assert_eq!(
        open,
        0,
        "connections still open {} s after their half request",
        (HEADER_READ_TIMEOUT + MARGIN).as_secs()
    );
    let idle_end = tokio::time::timeout_at(
        (opened + HEADER_READ_TIMEOUT + MARGIN).into(),
        idle.read_to_end(&mut Vec::new()),
    )
    .await;
    assert!(
        idle_end.is_ok(),
        "the idle kept-alive connection stays open"
    );
    showcase.stops_cleanly().await;
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn names_and_bodies_past_the_limits_are_refused_with_the_rule() {
    let data = data_folder("limits");
    let mut showcase = Showcase::start(&data).await;
    let client = reqwest::Client::new();
    let long_name = "a".repeat(10_000);
    for (path, rule) in [
        (
            format!("/reports/{long_name}"),
            "a report name is 1 to 64 letters, digits or `-`\n",
        ),
        (
            "/reports/a.b".to_owned(),
            "a report name is 1 to 64 letters, digits or `-`\n",
        ),
        (
            format!("/exports/{long_name}"),
            "an export name is 1 to 64 letters, digits or `-`\n",
        ),
    ] {
        assert_eq!(showcase.post(&client, &path).await, (400, rule.to_owned()));
    }
    let response = client
        .get(showcase.url(&format!("/reports/{long_name}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    let sign_up = |name: String, password: String| {
        client
            .post(showcase.url("/users"))
            .json(&serde_json::json!({"name": name, "password": password}))
            .send()
    };
    let password = || "correct horse battery staple".to_owned();
    for (name, password, rule) in [
        (
            "b".repeat(65),
            password(),
            "a user name is 1 to 64 letters, digits or `-`\n",
        ),
        (
            "ada".to_owned(),
            "d".repeat(257),
            "a password is 8 to 256 characters\n",
        ),
    ] {
        let response = sign_up(name, password).await.unwrap();
        assert_eq!(response.status(), 422);
        assert_eq!(response.text().await.unwrap(), rule);
    }
    let response = sign_up("c".repeat(1_900_000), password()).await.unwrap();
    assert_eq!(response.status(), 413, "a 1.9 MB body is too large");
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("length limit exceeded")
    );
    showcase.stops_cleanly().await;
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn a_report_being_rewritten_is_always_read_whole() {
    let data = data_folder("rewrite");
    let mut showcase = Showcase::start(&data).await;
    let client = reqwest::Client::new();
    assert_eq!(showcase.post(&client, "/reports/weekly").await.0, 201);
    let url = showcase.url("/reports/weekly");
    let writes = {
        let client = client.clone();
        let url = url.clone();
        tokio::spawn(async move {
            for _ in 0..300 {
                let status = client.post(&url).send().await.unwrap().status();
                assert_eq!(status, 201);
            }
        })
    };
    let mut reads = 0;
    while !writes.is_finished() {
        let text = client.get(&url).send().await.unwrap().text().await.unwrap();
        assert_eq!(text, "report weekly\nusers: \n", "read number {reads}");
        reads += 1;
    }
    writes.await.unwrap();
    assert!(reads > 0);
    showcase.stops_cleanly().await;
    let _ = std::fs::remove_dir_all(&data);
}

#[tokio::test]
async fn a_body_sent_too_slowly_is_refused() {
    let data = data_folder("slow-body");
    let mut showcase = Showcase::start(&data).await;
    let mut stream = showcase.sent(&a_body_begun(100)).await;
    let mut status_line = String::new();
    tokio::time::timeout(
        BODY_DEADLINE + MARGIN,
        BufReader::new(&mut stream).read_line(&mut status_line),
    )
    .await
    .expect("the server answers within the body deadline")
    .unwrap();
    assert!(
        status_line.starts_with("HTTP/1.1 4"),
        "a 4xx answer: {status_line:?}"
    );
    showcase.stops_cleanly().await;
    let _ = std::fs::remove_dir_all(&data);
}
