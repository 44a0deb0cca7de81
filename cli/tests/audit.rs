//! `cargo lanes audit` over the fixture crates in `tests/audit/`: each line
//! marked `// hotspot: <rule>` is reported, at that line, and nothing else;
//! each line marked `// test-hotspot: <rule>` too, with `--include-tests`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use lanes_audit::{Context, Options, Report};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/audit")
        .join(name)
}

type Marks = BTreeSet<(String, usize, String)>;

/// `(file, line, rule)` of every `<marker><rule>` comment in the `.rs` files
/// of the fixture's `src/`, `tests/`, `benches/` and `examples/`, at any
/// depth.
fn marks(root: &Path, marker: &str) -> Marks {
    let mut marks = BTreeSet::new();
    let mut folders: Vec<PathBuf> = ["src", "tests", "benches", "examples"]
        .iter()
        .map(|folder| root.join(folder))
        .filter(|folder| folder.is_dir())
        .collect();
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let file = path
                .strip_prefix(root)
                .unwrap()
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            for (i, line) in text.lines().enumerate() {
                if let Some((_, rule)) = line.split_once(marker) {
                    marks.insert((file.clone(), i + 1, rule.trim().to_owned()));
                }
            }
        }
    }
    marks
}

/// The lines the audit reports by default.
fn marked(root: &Path) -> Marks {
    marks(root, "// hotspot: ")
}

/// The lines in test code, reported only with `--include-tests`.
fn marked_in_tests(root: &Path) -> Marks {
    marks(root, "// test-hotspot: ")
}

fn reported(report: &Report) -> Marks {
    report
        .flagged
        .iter()
        .flat_map(|f| {
            f.hotspots
                .iter()
                .map(|h| (f.file.clone(), h.line, h.rule.clone()))
        })
        .collect()
}

fn audit(root: &Path) -> Report {
    lanes_audit::audit(root, &Options::default()).unwrap()
}

fn audit_with_tests(root: &Path) -> Report {
    let options = Options {
        include_tests: true,
        ..Options::default()
    };
    lanes_audit::audit(root, &options).unwrap()
}

/// Each flagged body as `(file, function, context, roles)`.
fn places(report: &Report) -> Vec<(&str, &str, &str, String)> {
    report
        .flagged
        .iter()
        .map(|f| {
            (
                f.file.as_str(),
                f.function.as_str(),
                f.context.as_str(),
                f.roles.join(", "),
            )
        })
        .collect()
}

fn run(args: &[&str]) -> (Option<i32>, String) {
    let output = cargo_lanes(args, None);
    (
        output.status.code(),
        String::from_utf8(output.stdout).unwrap(),
    )
}

/// The audit binary, run as cargo runs it, with `LANES_CONF_DIR` set to
/// `config_dir` or unset.
fn cargo_lanes(args: &[&str], config_dir: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cargo-lanes"));
    command.args(args).env_remove("LANES_CONF_DIR");
    if let Some(dir) = config_dir {
        command.env("LANES_CONF_DIR", dir);
    }
    command.output().unwrap()
}

/// A folder of files made for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str, files: &[(&str, &str)]) -> Scratch {
        let dir = std::env::temp_dir().join(format!("lanes-audit-{name}-{}", std::process::id()));
        for (file, text) in files {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Scratch(dir)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn every_marked_hotspot_is_found_at_its_line_and_nothing_else() {
    for name in [
        "hotspots", "service", "actix", "contexts", "imports", "futures", "offload", "helpers",
        "guards", "routes",
    ] {
        let root = fixture(name);
        let report = audit(&root);
        assert_eq!(reported(&report), marked(&root), "fixture {name}");
    }
}

#[test]
fn target_hidden_and_unparseable_files_are_skipped_without_a_crash() {
    let report = audit(&fixture("hotspots"));
    // main.rs, handlers.rs, broken.rs: not target/ nor .cache/.
    assert_eq!(report.files_read, 3);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].file, "src/broken.rs");
    assert_eq!(report.skipped[0].reason, "3:13: expected an expression");
}

#[test]
fn the_service_audit_names_the_four_places_with_their_roles() {
    let report = audit(&fixture("service"));
    let places: Vec<(&str, &[String], usize)> = report
        .flagged
        .iter()
        .map(|f| (f.function.as_str(), f.roles.as_slice(), f.hotspots[0].line))
        .collect();
    assert_eq!(
        places,
        [
            (
                "checkout",
                &["handler for POST /checkout/{sku}".to_owned()][..],
                20
            ),
            (
                "refresh",
                &["handler for GET /refresh/{sku}".to_owned()][..],
                25
            ),
            ("authenticate", &["middleware".to_owned()][..], 31),
            ("app", &["middleware".to_owned()][..], 45),
        ]
    );
    assert!(
        !report.flagged[3].is_async_fn,
        "the closure middleware is an async block in `app`"
    );
}

#[test]
fn text_output_groups_by_file_and_exits_1() {
    let root = fixture("service");
    let (status, text) = run(&[
        "lanes",
        "audit",
        root.to_str().unwrap(),
        "--fix-suggestions",
    ]);
    assert_eq!(status, Some(1));
    assert!(
        text.starts_with(
            "src/main.rs\n  async fn checkout (handler for POST /checkout/{sku}), line 19\n"
        ),
        "{text}"
    );
    assert!(text.contains(
        "    25:17  [block-on] `block_on` blocks the tokio worker inside async code; `.await` the \
         future instead: a runtime entered from inside a runtime panics or deadlocks\n"
    ));
    assert!(text.contains(
        "    suggestion: `.await` the futures instead of `block_on`, then mark the fn #[lanes::io_bound]\n"
    ));
    assert!(
        text.ends_with("\n4 blocking calls in 4 async bodies across 1 file (1 file read)\n"),
        "{text}"
    );
}

#[test]
fn clean_code_reports_nothing_and_exits_0() {
    let (status, text) = run(&["lanes", "audit", fixture("clean").to_str().unwrap()]);
    assert_eq!(status, Some(0));
    assert_eq!(text, "no blocking calls in async code (1 file read)\n");
}

#[test]
fn json_output_holds_every_hotspot_and_the_skipped_files() {
    let (status, json) = run(&[
        "lanes",
        "audit",
        fixture("hotspots").to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(status, Some(1));
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let hotspots: usize = value["flagged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["hotspots"].as_array().unwrap().len())
        .sum();
    assert_eq!(hotspots, marked(&fixture("hotspots")).len());
    assert_eq!(value["skipped"][0]["file"], "src/broken.rs");
    let first = &value["flagged"][0];
    assert_eq!(first["file"], "src/handlers.rs");
    assert_eq!(first["function"], "user");
    assert_eq!(first["hotspots"][0]["line"], 5);
    assert_eq!(first["hotspots"][0]["column"], 16);
}

#[test]
fn sarif_output_is_a_2_1_0_log_with_one_result_per_hotspot() {
    let (status, sarif) = run(&[
        "lanes",
        "audit",
        fixture("service").to_str().unwrap(),
        "--format",
        "sarif",
    ]);
    assert_eq!(status, Some(1));
    let value: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    assert_eq!(value["version"], "2.1.0");
    let run = &value["runs"][0];
    assert_eq!(run["tool"]["driver"]["name"], "cargo-lanes");
    let results = run["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    let location = &results[0]["locations"][0]["physicalLocation"];
    assert_eq!(location["artifactLocation"]["uri"], "src/main.rs");
    assert_eq!(location["region"]["startLine"], 20);
    let rules: Vec<&str> = run["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["block-on", "reqwest-blocking", "ureq"]);
}

#[test]
fn a_missing_folder_or_a_broken_lanes_toml_is_an_error_with_status_2() {
    let (status, _) = run(&["lanes", "audit", "/no/such/folder"]);
    assert_eq!(status, Some(2));

    let dir =
        std::env::temp_dir().join(format!("lanes-audit-broken-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("lanes.toml"), "alow = []\n").unwrap();
    std::fs::write(dir.join("lib.rs"), "async fn f() {}\n").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_cargo-lanes"))
        .args(["lanes", "audit"])
        .arg(&dir)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with("error: invalid ") && stderr.contains("unknown field `alow`"),
        "{stderr}"
    );
}

#[test]
fn the_audit_reads_every_ui_case_without_panicking() {
    // The ui suites hold the oddest code in the repository, malformed included.
    let ui = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/ui");
    let report = audit(&ui);
    assert!(
        report.files_read >= 50,
        "read only {} files",
        report.files_read
    );
    let skipped: Vec<&str> = report.skipped.iter().map(|s| s.file.as_str()).collect();
    assert_eq!(skipped, ["common/fail/body-does-not-parse.rs"]);
}

#[test]
fn test_code_is_left_out_and_counted_unless_asked_for() {
    let root = fixture("contexts");
    let in_tests = marked_in_tests(&root);
    assert_eq!(in_tests.len(), 6, "one in each kind of test code");

    let report = audit(&root);
    assert_eq!(reported(&report), marked(&root));
    assert_eq!(report.test_hotspots_left_out, in_tests.len());

    let report = audit_with_tests(&root);
    let everything: Marks = marked(&root).union(&in_tests).cloned().collect();
    assert_eq!(reported(&report), everything);
    assert_eq!(report.test_hotspots_left_out, 0);
    for flagged in &report.flagged {
        let is_test = flagged
            .hotspots
            .iter()
            .all(|h| in_tests.contains(&(flagged.file.clone(), h.line, h.rule.clone())));
        assert_eq!(flagged.context == Context::Test, is_test, "{flagged:?}");
    }
}

#[test]
fn each_flagged_body_says_where_it_runs() {
    let report = audit(&fixture("contexts"));
    assert_eq!(
        places(&report),
        [
            (
                "src/api/mod.rs",
                "app",
                "handler",
                "handler for GET /slow".to_owned()
            ),
            (
                "src/api/users.rs",
                "show",
                "handler",
                "handler for GET /users/{id}".to_owned()
            ),
            (
                "src/api/users.rs",
                "list",
                "handler",
                "handler for GET /users".to_owned()
            ),
            ("src/api/users.rs", "list", "background", String::new()),
            ("src/main.rs", "main", "start-up", String::new()),
            ("src/main.rs", "main", "async", String::new()),
            ("src/main.rs", "main", "background", String::new()),
            ("src/main.rs", "refresh_cache", "background", String::new()),
            (
                "src/middleware.rs",
                "authenticate",
                "middleware",
                "middleware".to_owned()
            ),
        ]
    );
    let start_up = &report.flagged[4];
    assert_eq!(
        start_up.hotspots.iter().map(|h| h.line).collect::<Vec<_>>(),
        [12],
        "only what runs before `axum::serve` is start-up"
    );
}

#[test]
fn actix_routes_by_attribute_resource_and_scope_are_labelled() {
    let report = audit(&fixture("actix"));
    let handler =
        |function, route: &str| ("src/handlers.rs", function, "handler", route.to_owned());
    assert_eq!(
        places(&report),
        [
            handler("user", "handler for GET /users/{id}"),
            handler("create", "handler for POST /users"),
            handler("items", "handler for GET /items, handler for HEAD /items"),
            handler("stats", "handler for GET /admin/stats"),
            handler("report", "handler for GET /report"),
            handler("upload", "handler for /upload"),
            handler("health", "handler for GET /health"),
            handler("orders", "handler for POST /api/orders"),
            handler("remove", "handler for DELETE /api/v1/things/{id}"),
            ("src/main.rs", "main", "start-up", String::new()),
            ("src/main.rs", "main", "background", String::new()),
            ("src/main.rs", "main", "middleware", "middleware".to_owned()),
        ]
    );
}

#[test]
fn text_output_prints_start_up_as_notes_and_counts_the_test_code_left_out() {
    let root = fixture("contexts");
    let (status, text) = run(&["lanes", "audit", root.to_str().unwrap()]);
    assert_eq!(status, Some(1));
    let headers: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("  ") && !l.starts_with("    "))
        .collect();
    assert_eq!(
        headers[..5],
        [
            "  async block in app (handler for GET /slow), line 16",
            "  async fn show (handler for GET /users/{id}), line 4",
            "  async fn list (handler for GET /users), line 8",
            "  async block in list (background), line 10",
            "  note: async fn main (start-up), line 10",
        ]
    );
    assert!(
        text.contains(
            "  note: async fn main (start-up), line 10\n    12:18  [std-fs] \
             `std::fs::read_to_string` blocks the tokio worker inside async code;"
        ),
        "{text}"
    );
    assert!(
        text.ends_with(
            "\n8 blocking calls in 8 async bodies across 4 files, and 1 at start-up, shown as a \
             note that does not fail the audit (7 files read, 6 in test code left out; \
             --include-tests shows them)\n"
        ),
        "{text}"
    );

    let (status, text) = run(&["lanes", "audit", root.to_str().unwrap(), "--include-tests"]);
    assert_eq!(status, Some(1));
    assert!(
        text.contains("tests/api.rs\n  async fn wait_for_the_server (test), line 3\n"),
        "{text}"
    );
    assert!(
        text.ends_with(
            "\n14 blocking calls in 14 async bodies across 7 files, and 1 at start-up, shown as a \
             note that does not fail the audit (7 files read)\n"
        ),
        "{text}"
    );
}

#[test]
fn start_up_notes_alone_exit_0() {
    let service = Scratch::new(
        "start-up",
        &[(
            "src/main.rs",
            "#[tokio::main]\n\
             async fn main() {\n\
             \x20   let address = std::fs::read_to_string(\"address\").unwrap();\n\
             \x20   let listener = tokio::net::TcpListener::bind(address).await.unwrap();\n\
             \x20   axum::serve(listener, app()).await.unwrap();\n\
             }\n",
        )],
    );
    let (status, text) = run(&["lanes", "audit", service.path()]);
    assert_eq!(status, Some(0), "{text}");
    assert_eq!(
        text,
        "src/main.rs\n\
         \x20 note: async fn main (start-up), line 2\n\
         \x20   3:19  [std-fs] `std::fs::read_to_string` blocks the tokio worker inside async \
         code; use `tokio::fs::read_to_string(..).await`, or move this work into a #[blocking] fn\n\
         \n\
         no blocking calls in async code but 1 at start-up, shown as a note that does not fail \
         the audit (1 file read)\n"
    );
}

#[test]
fn json_output_gives_each_body_its_context() {
    let root = fixture("contexts");
    let (status, json) = run(&["lanes", "audit", root.to_str().unwrap(), "--format", "json"]);
    assert_eq!(status, Some(1));
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(value["test_hotspots_left_out"], 6);
    let flagged = value["flagged"].as_array().unwrap();
    let contexts: Vec<&str> = flagged
        .iter()
        .map(|f| f["context"].as_str().unwrap())
        .collect();
    assert_eq!(
        contexts,
        [
            "handler",
            "handler",
            "handler",
            "background",
            "start-up",
            "async",
            "background",
            "background",
            "middleware"
        ]
    );
    assert_eq!(flagged[1]["roles"][0], "handler for GET /users/{id}");
    assert_eq!(flagged[3]["roles"].as_array().unwrap().len(), 0);
}

#[test]
fn sarif_output_gives_each_result_its_context_and_start_up_the_note_level() {
    let root = fixture("contexts");
    let (status, sarif) = run(&[
        "lanes",
        "audit",
        root.to_str().unwrap(),
        "--format",
        "sarif",
    ]);
    assert_eq!(status, Some(1));
    let value: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    let results = value["runs"][0]["results"].as_array().unwrap();
    let levels: Vec<(&str, &str, u64)> = results
        .iter()
        .map(|r| {
            (
                r["properties"]["context"].as_str().unwrap(),
                r["level"].as_str().unwrap(),
                r["locations"][0]["physicalLocation"]["region"]["startLine"]
                    .as_u64()
                    .unwrap(),
            )
        })
        .filter(|(_, _, line)| [12, 15, 22].contains(line))
        .collect();
    assert_eq!(
        levels,
        [
            ("start-up", "note", 12),
            ("async", "error", 22),
            ("background", "error", 15)
        ]
    );
}

#[test]
fn lanes_conf_dir_gives_every_file_the_same_lanes_toml() {
    // The fixture's own lanes.toml adds `legacy_db::query` and allows
    // `std::fs::metadata`; this one allows every `std::fs` call instead.
    let config = Scratch::new("conf-dir", &[("lanes.toml", "allow = [\"std-fs\"]\n")]);
    let root = fixture("hotspots");
    let args = ["lanes", "audit", root.to_str().unwrap(), "--format", "json"];
    let output = cargo_lanes(&args, Some(config.0.as_path()));
    assert_eq!(output.status.code(), Some(1));
    let value: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let rules: BTreeSet<&str> = value["flagged"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["hotspots"].as_array().unwrap())
        .map(|h| h["rule"].as_str().unwrap())
        .collect();
    let expected = [
        "bcrypt",
        "process-output",
        "std-guard-across-await",
        "thread-sleep",
    ];
    assert_eq!(rules, expected.into_iter().collect());
}

#[test]
fn a_lanes_conf_dir_without_lanes_toml_is_an_error_with_status_2() {
    let empty = Scratch::new("empty-conf-dir", &[("README", "no lanes.toml here\n")]);
    let root = fixture("service");
    let output = cargo_lanes(
        &["lanes", "audit", root.to_str().unwrap()],
        Some(empty.0.as_path()),
    );
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(
        stderr,
        format!(
            "error: cannot read {}/lanes.toml (named by LANES_CONF_DIR): No such file or \
             directory (os error 2)\n",
            empty.path()
        )
    );
}

#[test]
fn files_nested_too_deeply_are_skipped_and_the_audit_goes_on() {
    let parens = format!(
        "fn f() -> u8 {{ {}1{} }}\n",
        "(".repeat(100_000),
        ")".repeat(100_000)
    );
    let minus = format!("fn f() -> i64 {{ {}1 }}\n", "- ".repeat(50_000));
    let blocks = format!(
        "async fn f() {{ {}{} }}\n",
        "{".repeat(50_000),
        "}".repeat(50_000)
    );
    let sleep = "async fn g() {\n    std::thread::sleep(std::time::Duration::from_millis(1));\n}\n";
    let tree = Scratch::new(
        "deep",
        &[
            ("src/blocks.rs", &blocks),
            ("src/minus.rs", &minus),
            ("src/parens.rs", &parens),
            ("src/sleep.rs", sleep),
        ],
    );
    let (status, text) = run(&["lanes", "audit", tree.path()]);
    assert_eq!(status, Some(1), "{text}");
    assert_eq!(
        text,
        "src/sleep.rs\n\
         \x20 async fn g, line 1\n\
         \x20   2:5  [thread-sleep] `std::thread::sleep` blocks the tokio worker inside async \
         code; use `tokio::time::sleep(..).await`, or move this work into a #[blocking] fn\n\
         skipped src/blocks.rs: nested too deeply to parse (depth 50001, limit 1000)\n\
         skipped src/minus.rs: nested too deeply to parse (depth 50002, limit 1000)\n\
         skipped src/parens.rs: nested too deeply to parse (depth 100002, limit 1000)\n\
         \n\
         1 blocking call in 1 async body across 1 file (4 files read, 3 skipped)\n"
    );
}

#[test]
fn a_route_labels_the_fn_its_path_resolves_to_not_every_fn_of_that_name() {
    let report = audit(&fixture("routes"));
    let labels: Vec<(&str, &[String])> = report
        .flagged
        .iter()
        .map(|f| (f.file.as_str(), f.roles.as_slice()))
        .collect();
    assert_eq!(
        labels,
        [
            ("src/admin.rs", &[][..]),
            ("src/users.rs", &["handler for GET /users".to_owned()][..]),
        ]
    );
}

#[test]
fn a_reader_that_stops_early_ends_the_audit_without_a_panic() {
    let sleep = "async fn g() {\n    std::thread::sleep(std::time::Duration::from_millis(1));\n}\n";
    let scratch = Scratch::new("closed-pipe", &[("lib.rs", sleep)]);
    // As `cargo lanes audit | head -0`: the pipe is closed before the
    // report is written.
    let mut child = Command::new(env!("CARGO_BIN_EXE_cargo-lanes"))
        .args(["lanes", "audit", scratch.path()])
        .env_remove("LANES_CONF_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr, "");
}
