#[lanes::cpu_bound]
async fn fib(n: u32) -> u64 {
    n.into()
}

fn main() {}
