//! The report as text for people, JSON, or SARIF 2.1.0 for code scanning.

use std::fmt::Write as _;

use serde_json::{Value, json};

use crate::Report;

/// Grouped by file, then by fn, with a closing count.
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
        let what = if flagged.is_async_fn {
            format!("async fn {}", flagged.function)
        } else {
            format!("async block in {}", flagged.function)
        };
        let roles = if flagged.roles.is_empty() {
            String::new()
        } else {
            format!(" ({})", flagged.roles.join(", "))
        };
        writeln!(out, "  {what}{roles}, line {}", flagged.line).unwrap();
        for hotspot in &flagged.hotspots {
            writeln!(
                out,
                "    {}:{}  [{}] {}",
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
    let files: std::collections::BTreeSet<_> = report.flagged.iter().map(|f| &f.file).collect();
    let summary = match report.hotspot_count() {
        0 => "no blocking calls in async code".to_owned(),
        n => format!(
            "{n} blocking call{} in {} async bod{} across {} file{}",
            plural(n),
            report.flagged.len(),
            if report.flagged.len() == 1 {
                "y"
            } else {
                "ies"
            },
            files.len(),
            plural(files.len())
        ),
    };
    let skipped = match report.skipped.len() {
        0 => String::new(),
        n => format!(", {n} skipped"),
    };
    writeln!(
        out,
        "{summary} ({} file{} read{skipped})",
        report.files_read,
        plural(report.files_read)
    )
    .unwrap();
    out
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

/// One SARIF result per hotspot, each rule described once.
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
                    "level": "error",
                    "message": { "text": hotspot.message },
                    "locations": [{
                        "physicalLocation": {
                            "artifactLocation": { "uri": flagged.file },
                            "region": { "startLine": hotspot.line, "startColumn": hotspot.column }
                        },
                        "logicalLocations": [{ "name": flagged.function, "kind": "function" }]
                    }]
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
