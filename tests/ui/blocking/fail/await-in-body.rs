#[lanes::blocking]
fn fetch() -> Vec<u8> {
    let bytes = tokio::fs::read("Cargo.toml").await.unwrap();
    bytes
}

fn main() {}
