//! axum's `#[debug_handler]`, written below #[background], checks the
//! enqueueing handler, and the job kind is still registered once.

use axum::extract::{Json, Path};
use axum::routing::post;
use axum::Router;

#[lanes::background(queue = "exports")]
#[axum::debug_handler]
async fn export(Path(name): Path<String>, Json(pages): Json<Vec<u32>>) -> Result<usize, String> {
    Ok(name.len() + pages.len())
}

#[lanes::background]
#[axum::debug_handler]
fn cleanup(Path(days): Path<u32>) {
    let _ = days;
}

fn main() {
    let _app: Router = Router::new()
        .route("/exports/{name}", post(export))
        .route("/cleanup/{days}", post(cleanup));
    // Panics if a kind is registered twice.
    let _registry = lanes::jobs::Registry::registered();
}
