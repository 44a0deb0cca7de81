// Build output: never audited.
pub async fn generated() {
    std::thread::sleep(std::time::Duration::from_millis(1));
}
