use std::sync::{Arc, Mutex};

#[lanes::io_bound]
async fn record(hits: Arc<Mutex<u64>>) {
    let mut guard = hits.lock().unwrap();
    *guard += 1;
    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
}

fn main() {}
