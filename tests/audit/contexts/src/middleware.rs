use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;

pub async fn authenticate(request: Request, next: Next) -> Response {
    let verdict = reqwest::blocking::get("http://auth.internal/verify"); // hotspot: reqwest-blocking
    drop(verdict);
    next.run(request).await
}

#[test]
fn a_runtime_in_a_sync_test() {
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        std::thread::sleep(std::time::Duration::from_millis(1)); // test-hotspot: thread-sleep
    });
}
