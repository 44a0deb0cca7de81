//! The attribute's own arguments: `#[blocking(limit = 8, timeout = "2s")]`,
//! `#[background(queue = "emails", retries = 5, timeout = "30s")]`,
//! `#[background(every = "5m")]`, `#[background(cron = "0 3 * * *")]`.

use std::time::Duration;

use proc_macro2::Span;
use syn::parse::Parser as _;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Lit, LitInt, LitStr, Meta, Token};

use crate::Lane;
use crate::errors::Errors;

/// The arguments of one lane attribute, validated.
#[derive(Default)]
pub(crate) struct LaneArgs {
    /// `#[blocking(limit = N)]`: at most N calls of this fn run at once.
    pub(crate) limit: Option<usize>,
    /// `#[background(queue = "...")]`: the queue its jobs go to.
    pub(crate) queue: Option<String>,
    /// `#[background(retries = N)]`: attempts after the first.
    pub(crate) retries: Option<u32>,
    /// `#[background(timeout = "30s")]`: how long one attempt may run;
    /// `#[blocking(timeout = "2s")]` and the other lanes: how long one call
    /// may take, waiting for its lane and running.
    pub(crate) timeout: Option<Timeout>,
    /// `#[background(kind = "...")]`: the name its jobs are stored under.
    pub(crate) kind: Option<String>,
    /// `#[background(every = "5m")]` or `#[background(cron = "...")]`.
    pub(crate) schedule: Option<Schedule>,
    /// Where a schedule is asked for, readable or not: a scheduled fn
    /// cannot take stored arguments either way.
    pub(crate) scheduled_at: Option<Span>,
}

/// When a scheduled kind's jobs are enqueued, as the runtime takes it.
pub(crate) enum Schedule {
    /// Every `millis` from the Unix epoch; `written` as the user wrote it.
    Every { written: String, millis: u64 },
    /// A cron expression, read in UTC.
    Cron(String),
}

/// A `timeout = "2s"`, and where its value is written (a fn that cannot
/// take it is told there).
#[derive(Clone, Copy)]
pub(crate) struct Timeout {
    pub(crate) after: Duration,
    pub(crate) span: Span,
}

/// The arguments each lane takes, with an example of each.
fn accepted(lane: Lane) -> &'static [(&'static str, &'static str)] {
    match lane {
        Lane::Blocking => &[("limit", "limit = 8"), ("timeout", "timeout = \"2s\"")],
        Lane::Background => &[
            ("queue", "queue = \"emails\""),
            ("retries", "retries = 5"),
            ("timeout", "timeout = \"30s\""),
            ("kind", "kind = \"send_welcome\""),
            ("every", "every = \"5m\""),
            ("cron", "cron = \"0 3 * * *\""),
        ],
        Lane::IoBound | Lane::CpuBound => &[("timeout", "timeout = \"2s\"")],
    }
}

/// What the lane accepts, for the "unknown argument" message.
fn expected(lane: Lane) -> String {
    let examples: Vec<String> = accepted(lane)
        .iter()
        .map(|(_, example)| format!("`{example}`"))
        .collect();
    match examples.as_slice() {
        [one] => format!("expected {one}"),
        more => format!("expected any of {}", more.join(", ")),
    }
}

/// Parses the arguments, reporting every bad one.
pub(crate) fn parse(lane: Lane, tokens: proc_macro2::TokenStream, errors: &mut Errors) -> LaneArgs {
    let mut args = LaneArgs::default();
    let Some(metas) = errors.take(Punctuated::<Meta, Token![,]>::parse_terminated.parse2(tokens))
    else {
        return args;
    };
    let mut seen: Vec<String> = Vec::new();
    for meta in metas {
        let name = meta.path().get_ident().map_or_else(
            || quote::ToTokens::to_token_stream(meta.path()).to_string(),
            ToString::to_string,
        );
        let Some((_, example)) = accepted(lane).iter().find(|(key, _)| *key == name) else {
            errors.push(syn::Error::new_spanned(
                meta.path(),
                format!(
                    "unknown argument `{name}` for {}; {}",
                    lane.attribute(),
                    expected(lane)
                ),
            ));
            continue;
        };
        let attribute = lane.attribute().trim_end_matches(']');
        let usage = format!("`{name}` takes a value: `{attribute}({example})]`");
        // limit, limit(8)
        let Meta::NameValue(nv) = &meta else {
            errors.push(syn::Error::new_spanned(&meta, usage));
            continue;
        };
        if seen.contains(&name) {
            errors.push(syn::Error::new_spanned(
                &nv.path,
                format!("duplicate `{name}`"),
            ));
            continue;
        }
        seen.push(name.clone());
        let value = &nv.value;
        match name.as_str() {
            "limit" => args.limit = errors.take(parse_limit(value)),
            "queue" => args.queue = errors.take(parse_name(value, "queue", &usage)),
            "kind" => args.kind = errors.take(parse_name(value, "kind", &usage)),
            "retries" => args.retries = errors.take(parse_retries(value, &usage)),
            // every = "5m", cron = "0 3 * * *"
            "every" | "cron" => {
                if args.scheduled_at.is_some() {
                    errors.push(syn::Error::new_spanned(
                        value,
                        "`every` and `cron` are two schedules, and a #[background] fn has one: \
                         keep either",
                    ));
                    continue;
                }
                args.scheduled_at = Some(value.span());
                args.schedule = errors.take(if name == "every" {
                    parse_every(value)
                } else {
                    parse_cron(value)
                });
            }
            "timeout" => {
                args.timeout = errors
                    .take(parse_timeout(lane, value))
                    .map(|after| Timeout {
                        after,
                        span: value.span(),
                    });
            }
            _ => unreachable!("every accepted argument is parsed"),
        }
    }
    args
}

fn int_literal(value: &Expr) -> Option<&LitInt> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => Some(int),
        _ => None,
    }
}

fn str_literal(value: &Expr) -> Option<&LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(text),
            ..
        }) => Some(text),
        _ => None,
    }
}

fn parse_limit(value: &Expr) -> syn::Result<usize> {
    let usage = "`limit` takes a whole number of concurrent calls: `#[blocking(limit = 8)]`";
    let Some(int) = int_literal(value) else {
        return Err(syn::Error::new(value.span(), usage));
    };
    match int.base10_parse::<usize>() {
        Ok(0) => Err(syn::Error::new(
            int.span(),
            "`limit = 0` would never run this fn; the limit must be at least 1",
        )),
        Ok(n) => Ok(n),
        Err(_) => Err(syn::Error::new(int.span(), usage)),
    }
}

/// A queue or kind name: a non-empty string without spaces.
fn parse_name(value: &Expr, what: &str, usage: &str) -> syn::Result<String> {
    let Some(text) = str_literal(value) else {
        return Err(syn::Error::new(value.span(), usage));
    };
    let name = text.value();
    if name.is_empty() || name.chars().any(char::is_whitespace) {
        return Err(syn::Error::new(
            text.span(),
            format!("a {what} name is a non-empty string without spaces"),
        ));
    }
    Ok(name)
}

fn parse_retries(value: &Expr, usage: &str) -> syn::Result<u32> {
    let usage = format!("{usage}; the number of attempts after the first, from 0");
    let Some(int) = int_literal(value) else {
        return Err(syn::Error::new(value.span(), usage));
    };
    match int.base10_parse::<u32>() {
        Ok(n) if n < u32::MAX => Ok(n),
        _ => Err(syn::Error::new(int.span(), usage)),
    }
}

/// `"500ms"`, `"30s"`, `"5m"`, `"1h"`: per attempt of a job, per call of
/// the other lanes' fns.
fn parse_timeout(lane: Lane, value: &Expr) -> syn::Result<Duration> {
    let usage = "`timeout` takes a duration with its unit: \"500ms\", \"30s\", \"5m\" or \"1h\"";
    let Some(text) = str_literal(value) else {
        return Err(syn::Error::new(value.span(), usage));
    };
    let written = text.value();
    let digits = written.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &written[digits.len()..];
    let scale = match unit {
        "ms" => Duration::from_millis(1),
        "s" => Duration::from_secs(1),
        "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(syn::Error::new(text.span(), usage)),
    };
    match digits.parse::<u32>() {
        Ok(0) => Err(syn::Error::new(
            text.span(),
            format!(
                "a zero `timeout` would stop every {} at once",
                if lane == Lane::Background {
                    "attempt"
                } else {
                    "call"
                }
            ),
        )),
        Ok(n) => Ok(scale * n),
        Err(_) => Err(syn::Error::new(text.span(), usage)),
    }
}

/// `"30s"`, `"5m"`, `"1h 30m"`, `"1day"`: humantime's durations, counted
/// from the Unix epoch, so every instance has the same slots.
fn parse_every(value: &Expr) -> syn::Result<Schedule> {
    let usage = "`every` takes a period with its units, as humantime reads it: \"30s\", \"5m\", \
                 \"1h 30m\", \"1day\"";
    let Some(text) = str_literal(value) else {
        return Err(syn::Error::new(value.span(), usage));
    };
    let written = text.value();
    let period = humantime::parse_duration(&written)
        .map_err(|error| syn::Error::new(text.span(), format!("{usage}; {error}")))?;
    // The slots are kept, and named in idempotency keys, in milliseconds.
    let millis = u64::try_from(period.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return Err(syn::Error::new(
            text.span(),
            "a zero `every` would enqueue jobs without pause; give a period of at least 1ms",
        ));
    }
    if period.subsec_nanos() % 1_000_000 != 0 {
        return Err(syn::Error::new(
            text.span(),
            "`every` counts whole milliseconds; round the period to a millisecond",
        ));
    }
    Ok(Schedule::Every { written, millis })
}

/// A cron expression as croner reads it (the runtime reads it the same
/// way, in `jobs/schedule.rs`), in UTC.
fn parse_cron(value: &Expr) -> syn::Result<Schedule> {
    let usage = "`cron` takes a cron expression, read in UTC: five fields, `minute hour \
                 day-of-month month day-of-week` (\"0 3 * * *\" is 03:00 every day, \
                 \"*/15 * * * MON-FRI\" every quarter hour on weekdays), or six with the \
                 seconds first";
    let Some(text) = str_literal(value) else {
        return Err(syn::Error::new(value.span(), usage));
    };
    let written = text.value();
    match written.parse::<croner::Cron>() {
        Ok(_) => Ok(Schedule::Cron(written)),
        Err(error) => Err(syn::Error::new(text.span(), format!("{usage}; {error}"))),
    }
}
