fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        std::thread::sleep(std::time::Duration::from_millis(1)); // test-hotspot: thread-sleep
    });
}
