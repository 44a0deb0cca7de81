#[lanes::io_bound]
async fn handler() -> u32 {
    let x = ;
    x
}

fn main() {}
