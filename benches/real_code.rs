//! `cargo lanes audit` on public services nobody here wrote, scored against
//! a classification made by reading their code (`benches/real-code/`).
//!
//! The checkouts are not part of this repository: `LANES_REAL_CODE` names a
//! folder holding one checkout per repository, named `owner+name`, at the
//! commit `repos.tsv` gives. Without it the scenario keeps the section of
//! the last run that had them.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::targets;

/// One classified line of a repository.
struct Row {
    verdict: String,
    context: String,
}

/// A reported line matches a classified one at most this many lines away:
/// the same call written over several lines, reported at its method.
const SAME_SITE: usize = 2;

const HEADING: &str = "## Real code: precision and recall of the audit";

#[derive(Default)]
struct Score {
    true_positives: usize,
    false_positives: usize,
    misses: usize,
    debatable: usize,
    unclassified: usize,
    warnings_true: usize,
    warnings_false: usize,
    start_up: usize,
    test_code_left_out: usize,
}

pub(crate) fn real_code(report: &mut String) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("real-code");
    let Some(checkouts) = std::env::var_os("LANES_REAL_CODE").map(PathBuf::from) else {
        keep_last_section(report, "`LANES_REAL_CODE` was not set");
        return;
    };
    let repos = read_tsv(&data.join("repos.tsv"));
    writeln!(
        report,
        "{HEADING}\n\n`cargo lanes audit` (in-process, default options: test code left out) on \
         {} public services, each line it reports compared with a classification made by \
         reading the code (`benches/real-code/<repo>.tsv`: true, false or debatable for every \
         finding, and `miss` for the real blocking calls found by hand that the audit must \
         report). Scored on run-time server code (handlers, middleware, background tasks, the \
         async fns they call); start-up code and path-stat warnings are counted apart. A report \
         within {SAME_SITE} lines of a classified line in the same file counts as that line. \
         Checkouts from `LANES_REAL_CODE`.\n",
        repos.len()
    )
    .unwrap();
    writeln!(
        report,
        "| repository | commit | framework | lines | true | false | missed | debatable | \
         unclassified | warnings true / false | start-up notes |"
    )
    .unwrap();
    writeln!(report, "|---|---|---|---|---|---|---|---|---|---|---|").unwrap();
    let mut total = Score::default();
    for repo in &repos {
        let name = repo["repo"].replace('/', "+");
        let folder = checkouts.join(&repo["folder"]);
        if !folder.is_dir() {
            writeln!(
                report,
                "| {} | not found at {} |",
                repo["repo"],
                folder.display()
            )
            .unwrap();
            continue;
        }
        let truth = read_truth(&data.join(format!("{name}.tsv")));
        let audit = lanes_audit::audit(&folder, &lanes_audit::Options::default())
            .expect("the audit reads the checkout");
        let score = score(&audit, &truth);
        writeln!(
            report,
            "| {} | `{}` | {} | {} | {} | {} | {} | {} | {} | {} / {} | {} |",
            repo["repo"],
            &repo["commit"][..10],
            repo["framework"],
            repo["rs_lines"],
            score.true_positives,
            score.false_positives,
            score.misses,
            score.debatable,
            score.unclassified,
            score.warnings_true,
            score.warnings_false,
            score.start_up,
        )
        .unwrap();
        total.add(&score);
    }
    let precision = ratio(
        total.true_positives,
        total.true_positives + total.false_positives,
    );
    let recall = ratio(total.true_positives, total.true_positives + total.misses);
    writeln!(
        report,
        "| **total** | | | | {} | {} | {} | {} | {} | {} / {} | {} |\n",
        total.true_positives,
        total.false_positives,
        total.misses,
        total.debatable,
        total.unclassified,
        total.warnings_true,
        total.warnings_false,
        total.start_up,
    )
    .unwrap();
    writeln!(
        report,
        "Blocking calls in test code left out of the default report: {}.\n",
        total.test_code_left_out
    )
    .unwrap();
    targets(
        report,
        &[
            (
                "precision on run-time server code at least 95%",
                format!(
                    "{:.1}% ({} of {})",
                    precision * 100.0,
                    total.true_positives,
                    total.true_positives + total.false_positives
                ),
                precision >= 0.95,
            ),
            (
                "recall on run-time server code at least 85%",
                format!(
                    "{:.1}% ({} of {})",
                    recall * 100.0,
                    total.true_positives,
                    total.true_positives + total.misses
                ),
                recall >= 0.85,
            ),
        ],
    );
}

impl Score {
    fn add(&mut self, other: &Score) {
        self.true_positives += other.true_positives;
        self.false_positives += other.false_positives;
        self.misses += other.misses;
        self.debatable += other.debatable;
        self.unclassified += other.unclassified;
        self.warnings_true += other.warnings_true;
        self.warnings_false += other.warnings_false;
        self.start_up += other.start_up;
        self.test_code_left_out += other.test_code_left_out;
    }
}

fn ratio(part: usize, whole: usize) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

fn score(audit: &lanes_audit::Report, truth: &HashMap<(String, usize), Row>) -> Score {
    let mut score = Score {
        test_code_left_out: audit.test_hotspots_left_out,
        ..Score::default()
    };
    let mut matched = HashSet::new();
    for flagged in &audit.flagged {
        for hotspot in &flagged.hotspots {
            let exact = (flagged.file.clone(), hotspot.line);
            let key = if truth.contains_key(&exact) {
                Some(exact)
            } else {
                truth
                    .iter()
                    .filter(|((file, line), row)| {
                        *file == flagged.file
                            && line.abs_diff(hotspot.line) <= SAME_SITE
                            && is_blocking(row)
                    })
                    .map(|(key, _)| key.clone())
                    .find(|key| !matched.contains(key))
            };
            let Some(key) = key else {
                score.unclassified += 1;
                continue;
            };
            let row = &truth[&key];
            matched.insert(key);
            if row.context == "test" {
                continue;
            }
            if flagged.is_note() || row.context == "startup" {
                score.start_up += 1;
            } else if hotspot.is_warning() {
                match row.verdict.as_str() {
                    "false" => score.warnings_false += 1,
                    "debatable" => score.debatable += 1,
                    _ => score.warnings_true += 1,
                }
            } else {
                match row.verdict.as_str() {
                    "false" => score.false_positives += 1,
                    "debatable" => score.debatable += 1,
                    _ => score.true_positives += 1,
                }
            }
        }
    }
    score.misses = truth
        .iter()
        .filter(|(key, row)| {
            is_blocking(row)
                && row.context != "test"
                && row.context != "startup"
                && !matched.contains(*key)
        })
        .count();
    score
}

/// A real blocking call: one the audit reported and one it must report.
fn is_blocking(row: &Row) -> bool {
    row.verdict == "true" || row.verdict == "miss"
}

fn read_tsv(path: &Path) -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{} cannot be read: {e}", path.display()));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split('\t').collect();
    lines
        .filter(|line| !line.is_empty())
        .map(|line| {
            header
                .iter()
                .zip(line.split('\t'))
                .map(|(k, v)| ((*k).to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

fn read_truth(path: &Path) -> HashMap<(String, usize), Row> {
    read_tsv(path)
        .into_iter()
        .map(|row| {
            let line = row["line"].parse().expect("a line number");
            (
                (row["file"].clone(), line),
                Row {
                    verdict: row["verdict"].clone(),
                    context: row["context"].clone(),
                },
            )
        })
        .collect()
}

/// The section as the last full run with the checkouts wrote it.
fn keep_last_section(report: &mut String, why: &str) {
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("RESULTS.md");
    let previous = std::fs::read_to_string(results).unwrap_or_default();
    let section = previous.find(HEADING).map(|start| {
        let rest = &previous[start..];
        let end = rest[HEADING.len()..]
            .find("\n## ")
            .map_or(rest.len(), |i| i + HEADING.len() + 1);
        rest[..end]
            .lines()
            .filter(|line| !line.starts_with("(Kept from an earlier run"))
            .collect::<Vec<_>>()
            .join("\n")
            .replace("\n\n\n", "\n\n")
    });
    match section {
        Some(section) => {
            let section = section.replace(
                &format!("{HEADING}\n"),
                &format!("{HEADING}\n\n(Kept from an earlier run: {why} in this one.)\n"),
            );
            writeln!(report, "{section}\n").unwrap();
        }
        None => writeln!(report, "{HEADING}\n\nNot measured: {why}.\n").unwrap(),
    }
}
