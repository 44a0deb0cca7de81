//! Scheduled kinds: `#[background(every = "5m")]` and
//! `#[background(cron = "0 3 * * *")]`. The [`Workers`](super::Workers)
//! that run a scheduled kind enqueue one job of it per slot, with the
//! idempotency key `schedule:{kind}:{slot in Unix milliseconds}`: every
//! instance sharing a store computes the same slots from its clock, and
//! the store keeps the first enqueue of a key, so each slot is enqueued
//! once however many instances run.
//!
//! A slot missed while no instance ran: at start, the workers enqueue the
//! latest slot at or before now (a no-op if an instance already did), and
//! skip the older ones. The same holds for slots missed while the workers
//! ran but could not enqueue: after a failed enqueue they try again every
//! [`RETRY_EVERY`], with the latest slot.

use std::fmt;
use std::time::{Duration, SystemTime};

use tokio::sync::watch;

use super::kind::JobKind;
use super::{Store, from_millis, millis};

/// The payload member that tells a scheduled job its slot
/// ([`JobContext::slot`](super::JobContext::slot)): a scheduled fn stores
/// no arguments, so no binding of its shares the name.
const SLOT_MEMBER: &str = "__lanes_slot";

/// How soon a scheduler whose enqueue failed tries again, unless the next
/// slot comes first.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// When a scheduled kind's jobs are enqueued, as its attribute gave it.
/// Made by `#[background(every = ..)]` and `#[background(cron = ..)]`,
/// which checked it.
#[derive(Clone, Copy, Debug)]
pub struct Schedule(Written);

#[derive(Clone, Copy, Debug)]
enum Written {
    Every { written: &'static str, millis: u64 },
    Cron(&'static str),
}

impl Schedule {
    /// Every `millis` milliseconds (`written`, as the attribute spelt it),
    /// counted from the Unix epoch.
    pub const fn every(written: &'static str, millis: u64) -> Schedule {
        Schedule(Written::Every { written, millis })
    }

    /// At the times `expression` matches, in UTC.
    pub const fn cron(expression: &'static str) -> Schedule {
        Schedule(Written::Cron(expression))
    }

    /// The slots this schedule makes.
    pub(crate) fn slots(&self) -> Result<Slots, String> {
        match self.0 {
            Written::Every { millis, .. } => i64::try_from(millis)
                .ok()
                .filter(|millis| *millis > 0)
                .map(Slots::Every)
                .ok_or_else(|| format!("the period of `{self}` is out of range")),
            // The macro reads it the same way.
            Written::Cron(expression) => expression
                .parse::<croner::Cron>()
                .map(|cron| Slots::Cron(Box::new(cron)))
                .map_err(|error| format!("`{self}` cannot be read: {error}")),
        }
    }
}

/// `every 5m`, `cron 0 3 * * *`: the schedule as written.
impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Written::Every { written, .. } => write!(f, "every {written}"),
            Written::Cron(expression) => write!(f, "cron {expression}"),
        }
    }
}

/// The times of a schedule, in milliseconds since the Unix epoch: the same
/// on every instance.
#[derive(Debug)]
pub(crate) enum Slots {
    /// The multiples of this period.
    Every(i64),
    /// The times this expression matches, in UTC.
    Cron(Box<croner::Cron>),
}

impl Slots {
    /// The latest slot at or before `now`, if there is one.
    fn latest(&self, now: i64) -> Option<i64> {
        match self {
            Slots::Every(period) => Some(now - now.rem_euclid(*period)),
            Slots::Cron(cron) => {
                let found = cron.find_previous_occurrence(&utc_second(now)?, true);
                found.ok().map(|slot| slot.timestamp_millis())
            }
        }
    }

    /// The first slot after `now`, if there is one (a cron expression may
    /// match no time to come).
    fn next(&self, now: i64) -> Option<i64> {
        match self {
            Slots::Every(period) => Some(now - now.rem_euclid(*period) + period),
            Slots::Cron(cron) => {
                let found = cron.find_next_occurrence(&utc_second(now)?, false);
                found.ok().map(|slot| slot.timestamp_millis())
            }
        }
    }
}

/// `millis` down to its second, in UTC: cron slots fall on whole seconds.
fn utc_second(millis: i64) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(millis.div_euclid(1000), 0)
}

/// One scheduled kind, as [`Registry::schedules`](super::Registry::schedules)
/// lists it; serialized with its next slot in Unix milliseconds.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct ScheduledKind {
    /// The kind's name.
    pub kind: &'static str,
    /// The queue its jobs go to.
    pub queue: &'static str,
    /// The schedule as written: `every 5m`, `cron 0 3 * * *`.
    pub schedule: String,
    /// Its first slot after now; `None` when it has none (a cron
    /// expression that matches no time to come).
    #[serde(serialize_with = "millis::serialize_option")]
    pub next_slot: Option<SystemTime>,
}

impl ScheduledKind {
    /// `kind`'s entry, if it is scheduled.
    pub(crate) fn of(kind: &'static JobKind) -> Option<ScheduledKind> {
        let schedule = kind.schedule?;
        let next_slot = schedule
            .slots()
            .ok()
            .and_then(|slots| slots.next(millis::now()))
            .map(from_millis);
        Some(ScheduledKind {
            kind: kind.name,
            queue: kind.queue(),
            schedule: schedule.to_string(),
            next_slot,
        })
    }
}

/// The slot a scheduled job was enqueued for, from its payload.
pub(crate) fn slot_in(payload: &serde_json::Value) -> Option<SystemTime> {
    payload.get(SLOT_MEMBER)?.as_i64().map(from_millis)
}

/// Enqueues a job of `kind` for each of its slots, into `store`, until
/// `stopped` is set.
pub(crate) async fn enqueue_each_slot(
    store: Store,
    kind: &'static JobKind,
    schedule: Schedule,
    slots: Slots,
    mut stopped: watch::Receiver<bool>,
) {
    let name = kind.name;
    let written = schedule.to_string();
    // The latest slot enqueued, in milliseconds.
    let mut enqueued: Option<i64> = None;
    loop {
        let now = millis::now();
        let latest = slots.latest(now);
        let due = latest.filter(|latest| enqueued.is_none_or(|last| *latest > last));
        let mut failed = false;
        if let Some(slot) = due {
            let job = kind
                .new_job(serde_json::json!({ SLOT_MEMBER: slot }))
                .run_at(from_millis(slot))
                .idempotency_key(format!("schedule:{name}:{slot}"));
            let answer = tokio::select! {
                answer = store.enqueue(job) => answer,
                // Idempotent: an enqueue cut short here may be made again.
                _ = stopped.wait_for(|stopped| *stopped) => return,
            };
            match answer {
                Ok(_) => {
                    log_skipped(name, &written, &slots, enqueued, slot);
                    enqueued = Some(slot);
                }
                Err(error) => {
                    failed = true;
                    tracing::warn!(
                        kind = name,
                        schedule = written,
                        slot = %at(slot),
                        %error,
                        "lanes: a scheduled job could not be enqueued; trying again"
                    );
                }
            }
        }
        let Some(next) = slots.next(now) else {
            tracing::warn!(
                kind = name,
                schedule = written,
                "lanes: a schedule has no slot to come; no more of its jobs are enqueued"
            );
            return;
        };
        let until_next = Duration::from_millis(u64::try_from(next - now).unwrap_or(0));
        let wait = if failed {
            until_next.min(RETRY_EVERY)
        } else {
            until_next
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = stopped.wait_for(|stopped| *stopped) => return,
        }
    }
}

/// Logs the slots the enqueue of `slot` left out: before it, at start (any
/// that no instance enqueued), or since the last one enqueued.
fn log_skipped(kind: &str, written: &str, slots: &Slots, enqueued: Option<i64>, slot: i64) {
    match enqueued {
        None => tracing::info!(
            kind,
            schedule = written,
            slot = %at(slot),
            "lanes: a schedule started with its latest slot; earlier slots that no instance enqueued are skipped"
        ),
        Some(last) => {
            if let Some(first_missed) = slots.next(last).filter(|first| *first < slot) {
                tracing::warn!(
                    kind,
                    schedule = written,
                    from = %at(first_missed),
                    until = %at(slot),
                    "lanes: a schedule's slots were missed (the workers could not enqueue them in time); only the latest is enqueued"
                );
            }
        }
    }
}

/// A slot as RFC 3339 text, for logs.
fn at(slot: i64) -> humantime::Rfc3339Timestamp {
    humantime::format_rfc3339_millis(from_millis(slot))
}
