use axum::extract::{Json, Path, State};
use axum::routing::{get, post};
use axum::Router;

#[derive(Clone)]
struct AppState {
    greeting: String,
}

#[lanes::io_bound]
async fn greet(State(state): State<AppState>, Path(name): Path<String>) -> String {
    format!("{}, {name}", state.greeting)
}

#[lanes::io_bound]
async fn echo(Json(body): Json<Vec<u32>>) -> Json<Vec<u32>> {
    Json(body)
}

fn main() {
    let _app: Router = Router::new()
        .route("/greet/{name}", get(greet))
        .route("/echo", post(echo))
        .with_state(AppState { greeting: "hello".into() });
}
