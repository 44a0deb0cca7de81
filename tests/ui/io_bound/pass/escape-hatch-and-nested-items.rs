#[lanes::io_bound]
async fn settings() -> usize {
    #[lanes::allow_blocking("Cargo.toml is read once, before the server starts")]
    let text = std::fs::read_to_string("Cargo.toml").unwrap_or_default();

    // A nested fn does not run where the handler runs.
    fn helper() {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let _ = helper;
    text.len()
}

#[tokio::main]
async fn main() {
    assert!(settings().await > 0);
}
