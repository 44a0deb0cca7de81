#[lanes::io_bound]
async fn nested() -> u32 {
    futures::executor::block_on(async { 1 })
}

fn main() {}
