#[lanes::io_bound]
async fn settings() -> String {
    std::fs::read_to_string("settings.toml").unwrap_or_default()
}

fn main() {}
