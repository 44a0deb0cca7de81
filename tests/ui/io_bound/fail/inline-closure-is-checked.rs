#[lanes::io_bound]
async fn pace(items: Vec<u32>) {
    items.iter().for_each(|_| std::thread::sleep(std::time::Duration::from_millis(1)));
}

fn main() {}
