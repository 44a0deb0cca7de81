use std::process::Command;

#[lanes::io_bound]
async fn run_tool() -> bool {
    let mut tool = Command::new("true");
    tool.arg("--quiet");
    tool.status().map(|s| s.success()).unwrap_or(false)
}

fn main() {}
