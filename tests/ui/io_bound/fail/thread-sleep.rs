#[lanes::io_bound]
async fn slow() {
    std::thread::sleep(std::time::Duration::from_millis(100));
}

fn main() {}
