mod broken;
mod handlers;

use axum::Router;
use axum::routing::get;

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // `block_on` in a sync fn is how a runtime starts; the block it runs is async.
    runtime.block_on(async {
        let config = std::fs::read_to_string("app.toml").unwrap(); // hotspot: std-fs
        serve(config).await;
    });
}

async fn serve(config: String) {
    let app = Router::new()
        .route("/users/{id}", get(handlers::user).delete(handlers::remove))
        .route("/report", get(handlers::report))
        .route("/inline", get(|| async {
            std::thread::sleep(std::time::Duration::from_millis(5)); // hotspot: thread-sleep
            "done"
        }));
    let listener = tokio::net::TcpListener::bind(config).await.unwrap();
    axum::serve(listener, app).await.unwrap();
}
