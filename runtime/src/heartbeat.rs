//! The event-loop lag: a task on the service's tokio runtime that sleeps a
//! fixed beat and records how late it woke, every beat, into a histogram (so
//! that a spike between two scrapes is kept). A worker held by a blocking
//! call, or every worker busy, shows up as lag.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const BEAT: Duration = Duration::from_millis(20);

/// The seconds of lag history kept, for the dashboard's chart.
const HISTORY_SECONDS: usize = 300;

/// The worst lag of each of the last [`HISTORY_SECONDS`] seconds that had
/// a beat, oldest first: (seconds since the Unix epoch, lag in ms).
static HISTORY: Mutex<VecDeque<(u64, f64)>> = Mutex::new(VecDeque::new());

/// Whether a heartbeat task is alive; it clears this when its runtime drops
/// it, so the next runtime to call a lane fn starts its own.
static ALIVE: AtomicBool = AtomicBool::new(false);
static LAST_LAG_NANOS: AtomicU64 = AtomicU64::new(0);

/// How late the heartbeat woke at its last beat (tokio's timer adds up to
/// about 1 ms to any wake).
pub(crate) fn last_lag() -> Duration {
    Duration::from_nanos(LAST_LAG_NANOS.load(Ordering::Relaxed))
}

/// The worst lag of each recent second, oldest first: (seconds since the
/// Unix epoch, milliseconds). A spike between two looks is kept.
pub(crate) fn lag_history() -> Vec<(u64, f64)> {
    HISTORY
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .copied()
        .collect()
}

fn remember(lag: Duration) {
    let second = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let lag_ms = lag.as_secs_f64() * 1e3;
    let mut history = HISTORY.lock().unwrap_or_else(|e| e.into_inner());
    match history.back_mut() {
        Some((last, worst)) if *last == second => *worst = worst.max(lag_ms),
        _ => {
            history.push_back((second, lag_ms));
            if history.len() > HISTORY_SECONDS {
                history.pop_front();
            }
        }
    }
}

/// Starts the heartbeat on the current tokio runtime, unless one runs.
pub(crate) fn ensure_running() {
    if ALIVE.load(Ordering::Relaxed) || ALIVE.swap(true, Ordering::AcqRel) {
        return;
    }
    let alive = Alive;
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        drop(runtime.spawn(beat(alive)));
    }
}

/// Clears [`ALIVE`] when the heartbeat's future is dropped, polled or not.
struct Alive;

impl Drop for Alive {
    fn drop(&mut self) {
        ALIVE.store(false, Ordering::Release);
    }
}

async fn beat(_alive: Alive) {
    let histogram = metrics::histogram!("lanes_event_loop_lag_seconds");
    loop {
        let due = tokio::time::Instant::now() + BEAT;
        tokio::time::sleep_until(due).await;
        let lag = due.elapsed();
        LAST_LAG_NANOS.store(
            u64::try_from(lag.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        histogram.record(lag.as_secs_f64());
        remember(lag);
    }
}
