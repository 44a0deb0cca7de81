// The fn is still emitted, async, beside the error: the caller's `.await`
// compiles, and the only error is the `.await` in the body.

#[lanes::blocking]
fn report(id: u32) -> String {
    let text = tokio::task::block_in_place(|| id.to_string());
    async {}.await;
    text
}

#[tokio::main]
async fn main() {
    let _ = report(7).await;
}
