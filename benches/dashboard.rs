//! What one dashboard snapshot costs the job store, and whether the cost
//! follows the jobs that need attention or the whole history: the store
//! reads of one snapshot ([`lanes::jobs::Store::counts`] and the three
//! newest-first lists of running, failed and dead jobs) on a store that
//! holds only those, then on the same store after 100,000 jobs have
//! succeeded.

use std::fmt::Write;
use std::time::{Duration, Instant};

use lanes::jobs::{Finish, JobQuery, JobState, NewJob, Store, StoreOptions};
use serde_json::json;

use crate::{JobStoreKind, client_runtime, load};

/// Jobs that succeed, as the history grows.
const HISTORY: usize = 100_000;
/// Jobs waiting, dead, and running, which the dashboard shows.
const WAITING: usize = 500;
const DEAD: usize = 50;
const RUNNING: usize = 8;
const SNAPSHOTS: usize = 30;

pub(crate) fn dashboard(report: &mut String) {
    let mut stores = vec![JobStoreKind::Sqlite];
    match std::env::var("DATABASE_URL") {
        Ok(url) => stores.push(JobStoreKind::Postgres(url)),
        Err(_) => eprintln!("dashboard: DATABASE_URL is not set; the PostgreSQL rows are left out"),
    }
    let runtime = client_runtime(2);
    let mut rows = Vec::new();
    for kind in &stores {
        runtime.block_on(async {
            let options = StoreOptions::new().unbounded();
            // A round number of its own: no other scenario's store name.
            let (store, made) = kind.open_with(900, options).await;
            attention(&store).await;
            let before = snapshot_reads(&store).await;
            add_history(&store).await;
            let after = snapshot_reads(&store).await;
            rows.push((kind.name(), before, after));
            kind.remove(made).await;
        });
    }
    writeln!(report, "## Dashboard: what a snapshot costs the store\n").unwrap();
    writeln!(
        report,
        "One snapshot's store reads (`counts` and the newest {RUNNING} running, failed and dead \
         jobs), {SNAPSHOTS} in a row, with {WAITING} jobs waiting, {DEAD} dead and {RUNNING} \
         running; then again once {HISTORY} more have succeeded.\n\n\
         | store | median, no history | p99, no history | median, {HISTORY} succeeded | p99, {HISTORY} succeeded |\n\
         |---|---|---|---|---|"
    )
    .unwrap();
    for (name, before, after) in &rows {
        writeln!(
            report,
            "| {name} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            before.0, before.1, after.0, after.1
        )
        .unwrap();
    }
    writeln!(report).unwrap();
}

/// The jobs a dashboard shows: waiting, dead and running ones.
async fn attention(store: &Store) {
    for n in 0..WAITING + DEAD + RUNNING {
        let queue = if n < WAITING { "later" } else { "now" };
        let mut job = NewJob::new("report", json!(n)).queue(queue).max_attempts(1);
        if n < WAITING {
            job = job.run_after(Duration::from_secs(3600));
        }
        store.enqueue(job).await.expect("an enqueue");
    }
    let claimed = store
        .claim(
            "now",
            "dashboard-bench",
            Duration::from_secs(3600),
            DEAD + RUNNING,
        )
        .await
        .expect("a claim");
    for job in &claimed[..DEAD] {
        let how = Finish::Dead {
            error: "the report server refused".to_owned(),
        };
        store
            .finish(job.id, "dashboard-bench", how)
            .await
            .expect("a finish");
    }
}

/// Enqueues [`HISTORY`] jobs and runs them to success, in batches.
async fn add_history(store: &Store) {
    const BATCH: usize = 500;
    for _ in 0..HISTORY / BATCH {
        let enqueues =
            (0..BATCH).map(|n| store.enqueue(NewJob::new("done", json!(n)).queue("done")));
        for id in futures::future::join_all(enqueues).await {
            id.expect("an enqueue");
        }
        let claimed = store
            .claim("done", "history", Duration::from_secs(60), BATCH)
            .await
            .expect("a claim");
        let finishes = claimed
            .iter()
            .map(|job| store.finish(job.id, "history", Finish::Succeeded(None)));
        for finished in futures::future::join_all(finishes).await {
            assert!(finished.expect("a finish"));
        }
    }
}

/// The median and p99, in ms, of [`SNAPSHOTS`] snapshots' store reads.
async fn snapshot_reads(store: &Store) -> (f64, f64) {
    let mut took = Vec::with_capacity(SNAPSHOTS);
    for _ in 0..SNAPSHOTS {
        let started = Instant::now();
        let counts = store.counts().await.expect("the counts");
        for state in [JobState::Running, JobState::Failed, JobState::Dead] {
            let query = JobQuery::new().state(state).limit(RUNNING);
            store.list(&query).await.expect("a page");
        }
        took.push(started.elapsed());
        assert_eq!(counts.iter().map(|q| q.dead).sum::<u64>(), DEAD as u64);
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    (
        ms(load::quantile(&mut took, 0.5)),
        ms(load::quantile(&mut took, 0.99)),
    )
}
