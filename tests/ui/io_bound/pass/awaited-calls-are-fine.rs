use std::sync::Arc;
use std::time::Duration;

use tokio::fs;
use tokio::sync::Mutex;

#[lanes::io_bound]
async fn work(counter: Arc<Mutex<u32>>) -> usize {
    tokio::time::sleep(Duration::from_millis(1)).await;
    let manifest = fs::read_to_string("Cargo.toml").await.unwrap_or_default();
    let file = tokio::fs::File::open("Cargo.toml").await;
    let output = tokio::process::Command::new("true").output().await;
    let (a, b) = tokio::join!(fs::read("Cargo.toml"), fs::metadata("Cargo.toml"));
    *counter.lock().await += 1;
    let joined = ["a", "b"].join(",");
    let dir = std::path::Path::new("x").join("y");
    manifest.len() + usize::from(file.is_ok() && output.is_ok() && a.is_ok() && b.is_ok())
        + joined.len() + dir.as_os_str().len()
}

#[tokio::main]
async fn main() {
    let counter = Arc::new(Mutex::new(0));
    work(counter.clone()).await;
    assert_eq!(*counter.lock().await, 1);
}
