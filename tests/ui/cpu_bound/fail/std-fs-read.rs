#[lanes::cpu_bound]
fn checksum(path: String) -> u32 {
    let data = std::fs::read(path).unwrap_or_default();
    data.iter().map(|b| u32::from(*b)).sum()
}

fn main() {}
