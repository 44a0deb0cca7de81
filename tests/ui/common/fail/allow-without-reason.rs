#[lanes::io_bound]
async fn load() -> String {
    #[lanes::allow_blocking]
    let text = std::fs::read_to_string("settings.toml").unwrap_or_default();
    text
}

fn main() {}
