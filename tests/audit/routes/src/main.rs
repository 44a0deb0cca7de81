//! Two handlers' worth of fns named `get`: only the one the router names is
//! its handler.

mod admin;
mod users;

use axum::Router;
use axum::routing;

fn app() -> Router {
    Router::new().route("/users", routing::get(users::get))
}

fn main() {
    let _ = app();
}
