//! axum's `#[debug_handler]`, written below #[blocking], checks the async
//! handler the lane made of the fn. (Above it, it would see a plain `fn`.)

use axum::debug_handler;
use axum::extract::{Json, Path, State};
use axum::routing::{get, post};
use axum::Router;

#[derive(Clone)]
struct Reports;

#[lanes::blocking(limit = 2)]
#[debug_handler]
fn report(State(_reports): State<Reports>, Path(id): Path<u32>) -> String {
    std::thread::sleep(std::time::Duration::from_millis(1));
    format!("report {id}")
}

#[lanes::blocking]
#[axum::debug_handler(state = Reports)]
fn store(Json(lines): Json<Vec<String>>) {
    drop(lines);
}

#[tokio::main]
async fn main() {
    let _app: Router = Router::new()
        .route("/reports/{id}", get(report))
        .route("/reports", post(store))
        .with_state(Reports);
    assert_eq!(report(State(Reports), Path(3)).await, "report 3");
    store(Json(vec![String::new()])).await;
}
