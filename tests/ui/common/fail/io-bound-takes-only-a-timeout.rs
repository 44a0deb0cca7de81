#[lanes::io_bound(limit = 4)]
async fn health() -> &'static str {
    "ok"
}

fn main() {}
