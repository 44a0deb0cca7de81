//! The report as text for people, JSON, or SARIF 2.1.0 for code scanning.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::Report;

/// Grouped by file, then by fn, with a closing count. Start-up code is
/// printed as notes, which do not fail the audit.
pub fn text(report: &Report, fix_suggestions: bool) -> String {
    let mut out = String::new();
    let mut file = None;
    for flagged in &report.flagged {
        if file != Some(&flagged.file) {
            if file.is_some() {
                out.push('\n');
            }
            writeln!(out, "{}", flagged.file).unwrap();
            file = Some(&flagged.file);
        }
        let note = if flagged.is_note() { "note: " } else { "" };
        let what = if flagged.is_async_fn {
            format!("async fn {}", flagged.function)
        } else {
            format!("async block in {}", flagged.function)
        };
        let place = flagged
            .place()
            .map_or_else(String::new, |place| format!(" ({place})"));
        writeln!(out, "  {note}{what}{place}, line {}", flagged.line).unwrap();
        for hotspot in &flagged.hotspots {
            let warning = if hotspot.is_warning() {
                "warning: "
            } else {
                ""
            };
            writeln!(
                out,
                "    {}:{}  {warning}[{}] {}",
                hotspot.line, hotspot.column, hotspot.rule, hotspot.message
            )
            .unwrap();
        }
        if fix_suggestions {
            writeln!(out, "    suggestion: {}", flagged.suggestion()).unwrap();
        }
    }
    for skipped in &report.skipped {
        writeln!(out, "skipped {}: {}", skipped.file, skipped.reason).unwrap();
    }
    if !out.is_empty() {
        out.push('\n');
    }
    writeln!(
        out,
        "{}{} ({})",
        errors(report),
        notes(report),
        files(report)
    )
    .unwrap();
    out
}

/// What fails the audit: `4 blocking calls in 3 async bodies across 2 files`.
fn errors(report: &Report) -> String {
    let failing: Vec<_> = report
        .flagged
        .iter()
        .filter(|f| !f.is_note() && f.hotspots.iter().any(|h| !h.is_warning()))
        .collect();
    let files: std::collections::BTreeSet<_> = failing.iter().map(|f| &f.file).collect();
    match report.error_count() {
        0 => "no blocking calls in async code".to_owned(),
        n => format!(
            "{n} blocking call{} in {} async bod{} across {} file{}",
            plural(n),
            failing.len(),
            if failing.len() == 1 { "y" } else { "ies" },
            files.len(),
            plural(files.len())
        ),
    }
}

/// What is reported without failing the audit.
fn notes(report: &Report) -> String {
    let joint = if report.error_count() == 0 {
        " but"
    } else {
        ", and"
    };
    let notes = match report.note_count() {
        0 => String::new(),
        1 => format!("{joint} 1 at start-up, shown as a note that does not fail the audit"),
        n => format!("{joint} {n} at start-up, shown as notes that do not fail the audit"),
    };
    let warnings = match report.warning_count() {
        0 => String::new(),
        1 => ", and 1 path stat, shown as a warning that does not fail the audit".to_owned(),
        n => format!(", and {n} path stats, shown as warnings that do not fail the audit"),
    };
    notes + &warnings
}

/// What was read, and what was left out of the report.
fn files(report: &Report) -> String {
    let mut files = format!(
        "{} file{} read",
        report.files_read,
        plural(report.files_read)
    );
    if !report.skipped.is_empty() {
        write!(files, ", {} skipped", report.skipped.len()).unwrap();
    }
    if report.test_hotspots_left_out > 0 {
        write!(
            files,
            ", {} in test code left out; --include-tests shows them",
            report.test_hotspots_left_out
        )
        .unwrap();
    }
    files
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// The whole report, with each body's suggestion when asked for.
pub fn json(report: &Report, fix_suggestions: bool) -> String {
    let mut value = serde_json::to_value(report).expect("the report serializes");
    if fix_suggestions {
        for (entry, flagged) in value["flagged"]
            .as_array_mut()
            .expect("flagged is a list")
            .iter_mut()
            .zip(&report.flagged)
        {
            entry["suggestion"] = Value::String(flagged.suggestion());
        }
    }
    serde_json::to_string_pretty(&value).expect("JSON renders")
}

/// One SARIF result per hotspot, each rule described once; start-up
/// findings at level `note`.
pub fn sarif(report: &Report) -> String {
    let mut rules: Vec<&str> = report
        .flagged
        .iter()
        .flat_map(|f| f.hotspots.iter().map(|h| h.rule.as_str()))
        .collect();
    rules.sort_unstable();
    rules.dedup();
    let results: Vec<Value> = report
        .flagged
        .iter()
        .flat_map(|flagged| {
            flagged.hotspots.iter().map(move |hotspot| {
                json!({
                    "ruleId": hotspot.rule,
                    "level": if flagged.is_note() {
                        "note"
                    } else if hotspot.is_warning() {
                        "warning"
                    } else {
                        "error"
                    },
                    "message": { "text": hotspot.message },
                    "locations": [{
                        "physicalLocation": {
                            "artifactLocation": { "uri": flagged.file },
                            "region": { "startLine": hotspot.line, "startColumn": hotspot.column }
                        },
                        "logicalLocations": [{ "name": flagged.function, "kind": "function" }]
                    }],
                    "properties": { "context": flagged.context }
                })
            })
        })
        .collect();
    let sarif = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {
                "driver": {
                    "name": "cargo-lanes",
                    "version": env!("CARGO_PKG_VERSION"),
                    "rules": rules.iter().map(|id| json!({
                        "id": id,
                        "shortDescription": { "text": format!("blocking call in async code ({id})") }
                    })).collect::<Vec<_>>()
                }
            },
            "results": results
        }]
    });
    serde_json::to_string_pretty(&sarif).expect("SARIF renders")
}
