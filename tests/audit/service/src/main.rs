//! A service as many teams write it before lanes: a runtime's `block_on`
//! from async handlers, a synchronous HTTP client from async middleware.

use axum::extract::{Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;

#[derive(Clone)]
struct Prices {
    runtime: std::sync::Arc<tokio::runtime::Runtime>,
}

async fn fetch_price(sku: String) -> u64 {
    sku.len() as u64
}

async fn checkout(State(prices): State<Prices>, Path(sku): Path<String>) -> String {
    let price = prices.runtime.block_on(fetch_price(sku)); // hotspot: block-on
    price.to_string()
}

async fn refresh(Path(sku): Path<String>) -> String {
    let price = futures::executor::block_on(fetch_price(sku)); // hotspot: block-on
    price.to_string()
}

async fn authenticate(request: Request, next: Next) -> Response {
    let token = request.headers().get("authorization").cloned();
    let verdict = reqwest::blocking::Client::new() // hotspot: reqwest-blocking
        .post("http://auth.internal/verify")
        .body(format!("{token:?}"))
        .send();
    drop(verdict);
    next.run(request).await
}

fn app(prices: Prices) -> Router {
    Router::new()
        .route("/checkout/{sku}", post(checkout))
        .route("/refresh/{sku}", get(refresh))
        .layer(middleware::from_fn(authenticate))
        .layer(middleware::from_fn(|request: Request, next: Next| async move {
            let _ = ureq::get("http://audit.internal/log").call(); // hotspot: ureq
            next.run(request).await
        }))
        .with_state(prices)
}

#[tokio::main]
async fn main() {
    let prices = Prices { runtime: std::sync::Arc::new(tokio::runtime::Runtime::new().unwrap()) };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await.unwrap();
    axum::serve(listener, app(prices)).await.unwrap();
}
