// A hidden folder: never audited.
pub async fn scratch() {
    std::thread::sleep(std::time::Duration::from_millis(1));
}
