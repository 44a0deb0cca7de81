#[lanes::cpu_bound]
fn throttle(n: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(n));
    n
}

fn main() {}
