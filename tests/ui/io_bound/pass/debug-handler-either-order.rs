//! axum's `#[debug_handler]` checks an #[io_bound] handler written above or
//! below the lane attribute.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;

#[derive(Clone)]
struct Db;

#[lanes::io_bound]
#[axum::debug_handler]
async fn user(State(_db): State<Db>, Path(id): Path<u32>) -> String {
    tokio::task::yield_now().await;
    id.to_string()
}

#[axum::debug_handler(state = Db)]
#[lanes::io_bound]
async fn health() -> &'static str {
    tokio::task::yield_now().await;
    "ok"
}

#[tokio::main]
async fn main() {
    let _app: Router = Router::new()
        .route("/users/{id}", get(user))
        .route("/health", get(health))
        .with_state(Db);
    assert_eq!(user(State(Db), Path(7)).await, "7");
    assert_eq!(health().await, "ok");
}
