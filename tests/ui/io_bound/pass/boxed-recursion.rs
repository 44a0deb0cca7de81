//! An #[io_bound] fn may await itself through a box, as a plain `async fn`.

use std::future::Future;
use std::pin::Pin;

#[lanes::io_bound]
async fn countdown(n: u32) -> u32 {
    if n == 0 { 0 } else { Box::pin(countdown(n - 1)).await + 1 }
}

#[lanes::io_bound]
async fn depth(n: u32) -> u32 {
    fn boxed(n: u32) -> Pin<Box<dyn Future<Output = u32> + Send>> {
        Box::pin(depth(n))
    }
    if n == 0 { 0 } else { boxed(n - 1).await + 1 }
}

#[tokio::main]
async fn main() {
    assert_eq!(countdown(3).await, 3);
    assert_eq!(depth(4).await, 4);
}
