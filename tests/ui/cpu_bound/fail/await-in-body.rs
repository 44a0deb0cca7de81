#[lanes::cpu_bound]
fn checksum() -> u32 {
    let data = tokio::fs::read("Cargo.toml").await.unwrap();
    data.iter().map(|b| u32::from(*b)).sum()
}

fn main() {}
