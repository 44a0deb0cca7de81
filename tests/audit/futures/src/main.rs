//! Futures awaited wherever they are consumed: passed to `timeout`,
//! `select!`, `join!`, `join_all`, spawned, pinned, bound and awaited later.
//! `fs` here is never imported, so the rules read it as written; only the
//! last call blocks.

use std::time::Duration;

async fn handler(p: String) {
    let _ = tokio::time::timeout(Duration::from_secs(1), fs::read(&p)).await;
    tokio::spawn(fs::write(p.clone(), "x"));
    let pinned = Box::pin(fs::read(&p));
    let later = fs::read(&p);
    let other = fs::read_to_string(&p);
    tokio::pin!(other);
    let (_a, _b) = tokio::join!(later, pinned);
    tokio::select! {
        read = fs::read(&p) => drop(read),
        _ = &mut other => {}
    }
    let _all = futures::future::join_all(vec![fs::read(&p)]).await;
    let _mapped = fs::read(&p).map_err(drop).await;
    let _blocking = std::fs::read(&p); // hotspot: std-fs
}

fn main() {}
