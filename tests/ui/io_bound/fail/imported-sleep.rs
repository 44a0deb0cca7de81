use std::thread::sleep;
use std::time::Duration;

#[lanes::io_bound]
async fn slow() {
    sleep(Duration::from_millis(100));
}

fn main() {}
