// An async fn that awaits itself needs its future boxed; rustc says so at
// the fn, as for a plain `async fn`, not at the attribute.

#[lanes::io_bound]
async fn countdown(n: u32) -> u32 {
    if n == 0 { 0 } else { countdown(n - 1).await + 1 }
}

fn main() {}
