#[lanes::io_bound]
async fn compute() -> u64 {
    let handle = std::thread::spawn(|| 40 + 2);
    handle.join().unwrap()
}

fn main() {}
