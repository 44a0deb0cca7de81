pub mod users;

use axum::Router;
use axum::routing::get;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn app() -> Router {
    let (router, _api) = OpenApiRouter::new()
        .routes(routes!(users::show))
        .split_for_parts();
    router
        .route("/users", get(users::list))
        .route(
            "/slow",
            get(|| async {
                std::thread::sleep(std::time::Duration::from_millis(5)); // hotspot: thread-sleep
                "done"
            }),
        )
        .layer(axum::middleware::from_fn(crate::middleware::authenticate))
}
