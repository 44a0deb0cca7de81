//! The README's `curl` session, walked against the showcase: the service is
//! served on a free port with fresh data, each `$ curl ...` line of the
//! README is sent with a real HTTP client, and what it prints must read as
//! the README shows it. A line `...` there stands for any lines, and `...`
//! inside a line for any text; the README's job id stands for the one the
//! service gave.

use std::time::Duration;

use lanes_showcase::Showcase;

const README: &str = include_str!("../../README.md");
/// The line that opens the session in the README, and the address in it.
const SESSION: &str = "The showcase prints the `curl` commands to try";
const README_ADDR: &str = "127.0.0.1:3000";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_curl_session_answers_as_shown() {
    let data = std::env::temp_dir().join(format!("lanes-showcase-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let showcase = Showcase::open(data.clone())
        .await
        .expect("the showcase opens");
    let workers = showcase.start_workers().await.expect("the workers start");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(lanes_showcase::serve_until(
        listener,
        showcase.router(),
        std::future::pending(),
    ));

    let steps = session(README);
    assert!(
        steps.iter().any(|step| step.command.contains("/events")),
        "the README's session follows a job"
    );
    let client = reqwest::Client::new();
    // The README's job id, and the one this run's service gave.
    let mut job_id: Option<(String, String)> = None;
    for Step { command, expected } in steps {
        let command = swap(&job_id, &command).replace(README_ADDR, &addr);
        let printed = tokio::time::timeout(Duration::from_secs(30), curl(&client, &command))
            .await
            .unwrap_or_else(|_| panic!("`{command}` did not end within 30 s"));
        if let (None, Some(readme), Some(real)) =
            (&job_id, job_location(&expected), job_location(&printed))
        {
            job_id = Some((readme, real));
        }
        let expected = swap(&job_id, &expected);
        assert!(
            matches(&expected, &printed),
            "`{command}` printed:\n{printed}\nbut the README shows:\n{expected}"
        );
    }
    assert!(job_id.is_some(), "the session enqueued a job");

    // `/rates/USD` blocked its worker in the vendor SDK: the watchdog
    // took that stack, with the vendor's line, for the route's figures.
    let stack = async {
        loop {
            let stats = lanes::stats();
            if let Some(stack) = stats
                .route("GET /rates/{currency}")
                .and_then(|route| route.last_stuck_stack.clone())
            {
                return stack;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let stack = tokio::time::timeout(Duration::from_secs(30), stack)
        .await
        .expect("the watchdog reported the vendor call with its stack");
    let vendor = stack
        .frames
        .last()
        .expect("the stack holds the showcase's frames");
    assert_eq!(vendor.function, "vendor_sdk::exchange_rate", "{stack:?}");
    assert!(
        vendor
            .file
            .as_deref()
            .is_some_and(|file| file.ends_with("vendor-sdk/src/lib.rs")),
        "{stack:?}"
    );
    assert_eq!(vendor.line, Some(9), "the line of its sleep: {stack:?}");

    workers.shutdown(Duration::from_secs(5)).await;
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn the_showcase_prints_the_readmes_commands() {
    let steps = session(README);
    let readme_job = steps
        .iter()
        .find_map(|step| job_location(&step.expected))
        .expect("the README's session enqueues a job");
    let readme: Vec<String> = steps
        .iter()
        .map(|step| step.command.replace(&readme_job, "<id>"))
        .collect();
    assert_eq!(lanes_showcase::curl_commands(README_ADDR), readme);
}

/// `text` with the README's job id replaced by the real one.
fn swap(job_id: &Option<(String, String)>, text: &str) -> String {
    match job_id {
        Some((readme, real)) => text.replace(readme, real),
        None => text.to_owned(),
    }
}

struct Step {
    command: String,
    expected: String,
}

/// The commands of the README's session, each with the lines it shows
/// printed.
fn session(readme: &str) -> Vec<Step> {
    let start = readme.find(SESSION).expect("the README has the session");
    let block = readme[start..]
        .split("```")
        .nth(1)
        .expect("a code block follows");
    let mut steps: Vec<Step> = Vec::new();
    for line in block.lines().skip(1) {
        match line.strip_prefix("$ ") {
            Some(command) => steps.push(Step {
                command: command.to_owned(),
                expected: String::new(),
            }),
            None => {
                let step = steps.last_mut().expect("the block starts with a command");
                step.expected.push_str(line);
                step.expected.push('\n');
            }
        }
    }
    steps
}

/// The id in a `location: /jobs/{id}` line.
fn job_location(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix("location: /jobs/"))
        .map(str::to_owned)
}

/// Sends what a `curl` command line (`-X`, `-H`, `-d`, `-i`, `-s`, `-N`,
/// and a trailing `| grep WORD`) asks for, and returns what curl would
/// print.
async fn curl(client: &reqwest::Client, command: &str) -> String {
    let (command, grep) = match command.split_once(" | grep ") {
        Some((command, word)) => (command, Some(word)),
        None => (command, None),
    };
    let words = shell_words(command);
    assert_eq!(words[0], "curl", "{command}");
    let mut method = reqwest::Method::GET;
    let mut headers = Vec::new();
    let mut body = None;
    let mut include_headers = false;
    let mut url = None;
    let mut words = words[1..].iter();
    while let Some(word) = words.next() {
        let mut value = || words.next().expect("a value follows").clone();
        match word.as_str() {
            "-X" => method = value().parse().expect("a method"),
            "-H" => headers.push(value()),
            "-d" => {
                body = Some(value());
                if method == reqwest::Method::GET {
                    method = reqwest::Method::POST;
                }
            }
            "-i" => include_headers = true,
            "-s" | "-N" => {}
            other if other.starts_with("http://") => url = Some(other.to_owned()),
            other => panic!("the walk does not know the curl option `{other}`"),
        }
    }
    let mut request = client.request(method, url.expect("a URL"));
    for header in headers {
        let (name, value) = header.split_once(": ").expect("a `name: value` header");
        request = request.header(name, value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let response = request.send().await.expect("the showcase answers");
    let mut printed = String::new();
    if include_headers {
        let status = response.status();
        printed.push_str(&format!(
            "HTTP/1.1 {} {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ));
        for (name, value) in response.headers() {
            printed.push_str(&format!("{name}: {}\n", value.to_str().unwrap_or("")));
        }
        printed.push('\n');
    }
    printed.push_str(&response.text().await.expect("a whole body"));
    match grep {
        Some(word) => printed
            .lines()
            .filter(|line| line.contains(word))
            .map(|line| format!("{line}\n"))
            .collect(),
        None => printed,
    }
}

/// Splits a command line into words, with `'...'` quoting as a shell does.
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut in_word = false;
    for c in line.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                word.push(c);
                in_word = true;
            }
        }
    }
    assert!(!quoted, "an unclosed quote in `{line}`");
    if in_word {
        words.push(word);
    }
    words
}

/// Whether `printed` reads as `expected` shows it: line by line, where an
/// expected line `...` stands for any lines and `...` within a line for any
/// text. Blank lines at the end do not count.
fn matches(expected: &str, printed: &str) -> bool {
    fn lines(text: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = text.lines().collect();
        while lines.last().is_some_and(|line| line.is_empty()) {
            lines.pop();
        }
        lines
    }
    fn from(expected: &[&str], printed: &[&str]) -> bool {
        match expected.split_first() {
            None => printed.is_empty(),
            Some((&"...", rest)) => (0..=printed.len()).any(|skip| from(rest, &printed[skip..])),
            Some((line, rest)) => printed
                .split_first()
                .is_some_and(|(first, after)| line_matches(line, first) && from(rest, after)),
        }
    }
    from(&lines(expected), &lines(printed))
}

fn line_matches(pattern: &str, line: &str) -> bool {
    let parts: Vec<&str> = pattern.split("...").collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == line;
    };
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[test]
fn the_matcher_reads_ellipses_as_the_readme_means_them() {
    assert!(matches("ok\n", "ok\n"));
    assert!(!matches("ok\n", "no\n"));
    assert!(!matches("ok\n", "ok\nmore\n"));
    assert!(matches("a\n...\nz\n", "a\nb\nc\nz\n"));
    assert!(matches("a\n...\nz\n", "a\nz\n"));
    assert!(!matches("a\n...\nz\n", "a\nb\n"));
    assert!(matches(
        r#"{"id":"...","state":"running",...}"#,
        r#"{"id":"x","state":"running","n":1}"#
    ));
    assert!(!matches(
        r#"{...,"state":"running",...}"#,
        r#"{"id":"x","state":"queued"}"#
    ));
    assert!(
        !matches("ab...ba\n", "aba\n"),
        "the two ends may not overlap"
    );
    assert_eq!(
        shell_words(r#"curl -X POST http://h/users -d '{"name":"ada a"}'"#),
        [
            "curl",
            "-X",
            "POST",
            "http://h/users",
            "-d",
            r#"{"name":"ada a"}"#
        ]
    );
}
