//! axum's `#[debug_handler]`, written below #[cpu_bound], checks the async
//! handler the lane made of the fn. (Above it, it would see a plain `fn`.)

use axum::extract::Path;
use axum::routing::get;
use axum::Router;

#[lanes::cpu_bound]
#[axum::debug_handler]
fn fib(Path(n): Path<u32>) -> String {
    fn go(n: u32) -> u64 {
        if n < 2 { n.into() } else { go(n - 1) + go(n - 2) }
    }
    go(n).to_string()
}

#[tokio::main]
async fn main() {
    let _app: Router = Router::new().route("/fib/{n}", get(fib));
    assert_eq!(fib(Path(20)).await, "6765");
}
