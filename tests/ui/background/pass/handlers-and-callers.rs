//! What #[background] accepts: extractor patterns, a `JobContext` anywhere,
//! `State` under any pattern (it is not stored), `io::Result`, sync fns,
//! `mut` bindings; the call is awaited for the id and the fn is an axum
//! handler.

use axum::extract::{Form, Path, State};
use axum::routing::post;
use axum::{Json, Router};
use lanes::background;
use lanes::jobs::{JobContext, StoreError};

#[derive(serde::Serialize, serde::Deserialize)]
struct Signup {
    email: String,
    name: String,
}

/// Docs stay on the fn.
#[background(queue = "emails", retries = 5, timeout = "30s")]
pub async fn welcome(Form(Signup { email, name }): Form<Signup>, job: JobContext) -> std::io::Result<()> {
    job.progress(10, format!("writing to {name} <{email}>"));
    if job.is_cancelled() {
        return Err(std::io::Error::other("cancelled"));
    }
    Ok(())
}

#[background(kind = "reports.render", timeout = "2m")]
fn render(
    job: JobContext,
    Path((team, year)): Path<(String, u32)>,
    Json(mut pages): Json<Vec<u8>>,
) -> Result<String, String> {
    pages.push(0);
    job.progress(50, "half");
    Ok(format!("{team}-{year}-{}", pages.len()))
}

#[background]
async fn noop((a, b): (u8, Option<String>), Json(extra): Json<serde_json::Value>) {
    let _ = (a, b, extra);
}

#[derive(Clone)]
struct Mailer {
    from: String,
    retries: u32,
}

#[background]
async fn notify(State(Mailer { from, .. }): State<Mailer>, to: String) -> Result<String, String> {
    Ok(format!("{from} -> {to}"))
}

#[background]
fn count_retries(mut mailer: axum::extract::State<Mailer>, job: JobContext) -> Result<u32, String> {
    mailer.retries += job.attempt();
    Ok(mailer.retries)
}

async fn enqueue_from_code() -> Result<(), StoreError> {
    let accepted = noop((1, None), Json(serde_json::json!({}))).await?;
    let _id: lanes::jobs::JobId = accepted.0;
    render(Path(("core".to_owned(), 2026)), Json(vec![1, 2]))
        .run_after(std::time::Duration::from_secs(60))
        .idempotency_key("core-2026")
        .await?;
    Ok(())
}

fn main() {
    let _app: Router = Router::new()
        .route("/welcome", post(welcome))
        .route("/reports/{team}/{year}", post(render));
    let mailer = Mailer {
        from: "lanes@example.com".to_owned(),
        retries: 0,
    };
    let _with_state: Router = Router::new()
        .route("/notify", post(notify))
        .route("/retries", post(count_retries))
        .with_state(mailer.clone());
    let _ = notify(State(mailer), "ada@example.com".to_owned());
    let _ = enqueue_from_code;
}
