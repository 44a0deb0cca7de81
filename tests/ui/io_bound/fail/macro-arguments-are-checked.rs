#[lanes::io_bound]
async fn show() {
    println!("{}", std::fs::read_to_string("motd").unwrap_or_default());
}

fn main() {}
