use std::sync::{Arc, Mutex};
use std::time::Duration;

#[lanes::io_bound]
async fn record(hits: Arc<Mutex<u64>>) -> u64 {
    let scoped = {
        let guard = hits.lock().unwrap();
        *guard + 1
    };
    tokio::time::sleep(Duration::from_millis(1)).await;
    let guard = hits.lock().unwrap();
    let dropped = *guard + 1;
    drop(guard);
    tokio::time::sleep(Duration::from_millis(1)).await;
    let temporary = *hits.lock().unwrap() + 1;
    tokio::time::sleep(Duration::from_millis(1)).await;
    scoped + dropped + temporary
}

#[tokio::main]
async fn main() {
    assert_eq!(record(Arc::new(Mutex::new(0))).await, 3);
}
