#[lanes::io_bound]
async fn nested() -> u32 {
    tokio::runtime::Handle::current().block_on(async { 1 })
}

fn main() {}
