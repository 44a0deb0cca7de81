#[lanes::io_bound]
fn health() -> &'static str {
    "ok"
}

fn main() {}
