//! Closures handed to offloaders, named or block-wrapped, and the crate's
//! own offloader; only inline code is checked.

use std::time::Duration;

struct Db;

impl Db {
    async fn run<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send,
    {
        tokio::task::block_in_place(f)
    }
}

async fn handler(db: Db, p: String) {
    let work = move || std::fs::read("named");
    let _ = tokio::task::spawn_blocking(work).await;
    let q = p.clone();
    let _ = tokio::task::spawn_blocking({
        let q = q.clone();
        std::thread::sleep(Duration::from_millis(1)); // hotspot: thread-sleep
        move || std::fs::read(q)
    })
    .await;
    let inline = || std::fs::read("inline"); // hotspot: std-fs
    let _ = inline();
    let _ = db.run(|| std::fs::read("crate offloader")).await;
    let _ = lanes::run_blocking(move || std::fs::read(p)).await;
}

fn main() {}
