mod futures {
    pub mod executor {
        pub fn block_on<F: std::future::Future>(_: F) -> u32 {
            1
        }
    }
}

#[lanes::io_bound]
async fn nested() -> u32 {
    futures::executor::block_on(async { 1 })
}

fn main() {}
