#[lanes::io_bound]
async fn bump(counter: std::sync::Arc<tokio::sync::Mutex<u32>>) {
    *counter.blocking_lock() += 1;
}

fn main() {}
