use std::time::Duration;

#[lanes::io_bound]
async fn offload() -> u32 {
    let a = tokio::task::spawn_blocking(|| {
        std::thread::sleep(Duration::from_millis(1));
        1
    })
    .await
    .unwrap();
    // Detached: joining it here would block the worker.
    let _detached = std::thread::spawn(|| std::fs::read("Cargo.toml").map_or(0, |_| 1));
    let c = lanes::run_blocking(|| std::fs::metadata("Cargo.toml").map_or(0, |_| 1)).await;
    let d = lanes::run_cpu(|| (1..=10u32).sum::<u32>()).await;
    let handle = tokio::runtime::Handle::current();
    let e = handle.spawn_blocking(|| std::thread::sleep(Duration::from_millis(1))).await;
    a + c + d + u32::from(e.is_ok())
}

#[tokio::main]
async fn main() {
    assert_eq!(offload().await, 58);
}
