#[lanes::blocking]
async fn report() -> String {
    String::new()
}

fn main() {}
