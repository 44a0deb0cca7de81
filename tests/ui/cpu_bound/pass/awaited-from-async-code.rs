use axum::extract::Path;
use axum::routing::get;
use axum::Router;

#[lanes::cpu_bound]
fn fib(n: u32) -> u64 {
    fn go(n: u32) -> u64 {
        if n < 2 { n.into() } else { go(n - 1) + go(n - 2) }
    }
    go(n)
}

#[lanes::cpu_bound]
fn hash_route(Path(password): Path<String>) -> String {
    // CPU-heavy calls belong here; the rules only refuse sleeping and I/O.
    bcrypt::hash(password, 4).unwrap()
}

#[tokio::main]
async fn main() {
    assert_eq!(fib(30).await, 832_040);
    let _app: Router = Router::new().route("/hash/{password}", get(hash_route));
}
