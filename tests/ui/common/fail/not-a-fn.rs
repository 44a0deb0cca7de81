#[lanes::io_bound]
struct Handler;

fn main() {}
