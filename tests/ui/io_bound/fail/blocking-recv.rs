#[lanes::io_bound]
async fn next(mut rx: tokio::sync::mpsc::Receiver<u32>) -> Option<u32> {
    rx.blocking_recv()
}

fn main() {}
