// `timeout` on each lane, with the error types that take `lanes::TimedOut`:
// `std::io::Error`, a boxed error, and an error of the application's own,
// also as an axum handler.

use std::error::Error;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

#[derive(Debug)]
enum ReportError {
    TimedOut(lanes::TimedOut),
    Empty,
}

impl From<lanes::TimedOut> for ReportError {
    fn from(timed_out: lanes::TimedOut) -> ReportError {
        ReportError::TimedOut(timed_out)
    }
}

impl IntoResponse for ReportError {
    fn into_response(self) -> Response {
        match self {
            ReportError::TimedOut(timed_out) => {
                (StatusCode::GATEWAY_TIMEOUT, timed_out.to_string()).into_response()
            }
            ReportError::Empty => StatusCode::NOT_FOUND.into_response(),
        }
    }
}

#[lanes::io_bound(timeout = "2s")]
async fn fetch(path: String) -> std::io::Result<Vec<u8>> {
    tokio::fs::read(path).await
}

#[lanes::blocking(limit = 4, timeout = "500ms")]
fn size(path: std::path::PathBuf) -> Result<u64, Box<dyn Error + Send + Sync>> {
    Ok(std::fs::metadata(path)?.len())
}

#[lanes::cpu_bound(timeout = "1m")]
fn report() -> Result<String, ReportError> {
    let total: u64 = (1..=1000).sum();
    if total == 0 {
        return Err(ReportError::Empty);
    }
    Ok(total.to_string())
}

#[lanes::io_bound(timeout = "250ms")]
async fn summary() -> Result<String, ReportError> {
    let report = report().await?;
    Ok(format!("total: {report}"))
}

// A generic error type, bounded as the timeout needs.
#[lanes::blocking(timeout = "1h")]
fn first_byte<E: From<lanes::TimedOut> + Send + 'static>(bytes: Vec<u8>) -> Result<Option<u8>, E> {
    Ok(bytes.first().copied())
}

#[tokio::main]
async fn main() {
    let _: Router = Router::new()
        .route("/report", get(report))
        .route("/summary", get(summary))
        .layer(lanes::ShedLayer::new());
    let _ = fetch("Cargo.toml".to_owned()).await;
    let _ = size("Cargo.toml".into()).await;
    let _: Result<_, std::io::Error> = first_byte(vec![1]).await;
}
