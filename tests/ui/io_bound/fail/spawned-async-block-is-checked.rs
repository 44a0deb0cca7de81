#[lanes::io_bound]
async fn fire_and_forget() {
    tokio::spawn(async {
        std::thread::sleep(std::time::Duration::from_millis(1));
    });
}

fn main() {}
