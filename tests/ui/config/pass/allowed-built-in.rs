// lanes.toml beside this file allows `std::fs::metadata`.

#[lanes::io_bound]
async fn exists(path: String) -> bool {
    std::fs::metadata(path).is_ok()
}

#[tokio::main]
async fn main() {
    assert!(exists("Cargo.toml".to_owned()).await);
}
