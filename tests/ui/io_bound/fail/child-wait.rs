use std::process::Command;

#[lanes::io_bound]
async fn run_child() {
    let mut child = Command::new("true").spawn().unwrap();
    child.wait().unwrap();
}

fn main() {}
