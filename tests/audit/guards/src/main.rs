//! Lock guards: std and parking_lot guards alive at an `.await` in every
//! shape, and the tokio locks and lock futures that must stay quiet.

use std::sync::{Arc, Mutex};

use tokio::sync::RwLock;

static COUNTS: std::sync::LazyLock<Mutex<u64>> = std::sync::LazyLock::new(Default::default);

struct State {
    names: Mutex<Vec<String>>,
    cache: RwLock<u64>,
    fast: parking_lot::Mutex<u8>,
}

impl State {
    async fn shapes(&self, hits: Arc<Mutex<u64>>, shared: Arc<RwLock<u64>>) {
        let names = self.names.lock().unwrap();
        save().await; // hotspot: std-guard-across-await
        drop(names);
        let _cache = self.cache.write().await;
        save().await;
        let fast = self.fast.lock();
        save().await; // hotspot: std-guard-across-await
        drop(fast);
        let _maybe = shared.try_read();
        save().await;
        if let Ok(mut h) = hits.lock() {
            *h += 1;
            save().await; // hotspot: std-guard-across-await
        }
        match COUNTS.lock() {
            Ok(_c) => save().await, // hotspot: std-guard-across-await
            Err(_) => {}
        }
        let Ok(_c) = hits.lock() else { return };
        let _d = hits.lock().map_err(|_| ()).unwrap();
        save().await; // hotspot: std-guard-across-await
    }

    async fn released(&self) -> usize {
        let n = {
            let names = self.names.lock().unwrap();
            names.len()
        };
        save().await;
        n
    }
}

async fn select_branches(rx: tokio::sync::mpsc::Receiver<u8>) {
    let mut rx = rx;
    tokio::select! {
        _ = rx.recv() => {}
        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {
            std::thread::sleep(std::time::Duration::from_millis(1)); // hotspot: thread-sleep
        }
    }
}

async fn save() {}

fn main() {}
