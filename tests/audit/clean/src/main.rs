//! Async code that keeps its workers free: nothing for the audit to report.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::routing::get;

async fn health() -> &'static str {
    "ok"
}

async fn report(hits: Arc<Mutex<u64>>) -> String {
    tokio::time::sleep(Duration::from_millis(1)).await;
    let text = tokio::fs::read_to_string("report.txt").await.unwrap_or_default();
    let count = {
        let mut guard = hits.lock().unwrap();
        *guard += 1;
        *guard
    };
    let size = tokio::task::spawn_blocking(|| std::fs::metadata("big.bin").map(|m| m.len()))
        .await
        .unwrap()
        .unwrap_or(0);
    let joined = ["a", "b"].join(",");
    format!("{text}{count}{size}{joined}")
}

#[lanes::cpu_bound]
fn hash(password: String) -> String {
    bcrypt::hash(password, 12).unwrap()
}

#[lanes::blocking]
fn export() -> std::io::Result<()> {
    std::fs::write("export.csv", "id\n")
}

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let app: Router = Router::new().route("/health", get(health));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
        axum::serve(listener, app).await.unwrap();
    });
}
