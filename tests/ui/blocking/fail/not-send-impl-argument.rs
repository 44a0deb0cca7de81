// An `impl Trait` argument that is not `Send + 'static` cannot move to the
// blocking pool; rustc says so at the argument's type, with the bound to
// add, not across the whole body.

#[lanes::blocking]
fn show(value: impl std::fmt::Debug + 'static) -> String {
    let text = format!("{value:?}");
    text.to_uppercase()
}

#[lanes::blocking]
fn log(line: impl std::fmt::Display) -> usize {
    let text = line.to_string();
    text.len()
}

#[tokio::main]
async fn main() {
    let _: String = show(1).await;
    let _: usize = log("x").await;
}
