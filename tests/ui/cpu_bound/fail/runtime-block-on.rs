#[lanes::cpu_bound]
fn compute() -> u32 {
    tokio::runtime::Handle::current().block_on(async { 1 })
}

fn main() {}
