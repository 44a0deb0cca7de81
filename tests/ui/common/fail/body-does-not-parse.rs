// A body that does not parse is reported once, by rustc, at the syntax
// error; the fn keeps the shape of a success (`async`, or the enqueueing fn
// of #[background]), so callers' `.await` compiles, and neither the escape
// hatch, which rustc does not know, nor axum's `#[debug_handler]`, which
// would parse the body too, reports it again.

#[lanes::io_bound]
async fn handler() -> u32 {
    let x = ;
    x
}

#[lanes::blocking]
fn report(id: u32) -> String {
    #[lanes::allow_blocking("a small local file")]
    let text = std::fs::read_to_string("report.txt").unwrap();
    let line = format!("{id}: {text}") +;
    line
}

#[lanes::cpu_bound]
fn fib(n: u32) -> u64 {
    if n < 2 { n.into() } else { let a = ; a }
}

#[lanes::background]
fn export(name: String) {
    let path = name + ;
}

#[lanes::cpu_bound]
#[axum::debug_handler]
fn page(axum::extract::Path(id): axum::extract::Path<u32>) -> String {
    let page = id.to_string() +;
    page
}

async fn callers() -> Result<(), lanes::jobs::StoreError> {
    let _: u32 = handler().await;
    let _: String = report(1).await;
    let _: u64 = fib(30).await;
    export("all".to_owned()).await?;
    let _: String = page(axum::extract::Path(1)).await;
    Ok(())
}

fn main() {
    let _ = callers;
}
