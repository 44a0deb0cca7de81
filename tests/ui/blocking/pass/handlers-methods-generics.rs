use std::path::PathBuf;

use axum::extract::{Json, Path, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

#[derive(Clone)]
struct Reports {
    dir: PathBuf,
}

#[lanes::blocking(limit = 8)]
fn report(State(reports): State<Reports>, Path(id): Path<u32>) -> String {
    std::fs::read_to_string(reports.dir.join(format!("{id}.txt"))).unwrap_or_default()
}

#[lanes::blocking]
fn store(Json(lines): Json<Vec<String>>) -> impl IntoResponse {
    std::thread::sleep(std::time::Duration::from_millis(1));
    lines.len().to_string()
}

/// Doc comments and other attributes stay on the rewritten fn.
#[lanes::blocking]
#[must_use]
pub fn parse_all<T: std::str::FromStr + Send + 'static>(items: Vec<String>) -> Result<Vec<T>, T::Err>
where
    T::Err: Send + 'static,
{
    let mut parsed = Vec::with_capacity(items.len());
    for item in items {
        parsed.push(item.parse()?);
    }
    Ok(parsed)
}

/// `impl Trait` arguments that are `Send + 'static`, bound to names or
/// destructured, move to the pool like any other.
#[lanes::blocking]
fn label(
    name: impl std::fmt::Display + Send + 'static,
    (count, unit): (impl Into<u64> + Send + 'static, &'static str),
) -> String {
    format!("{name}: {} {unit}", count.into())
}

struct Ledger {
    entries: Vec<i64>,
}

impl Ledger {
    #[lanes::blocking]
    fn into_total(mut self) -> i64 {
        self.entries.push(0);
        self.entries.iter().sum()
    }
}

#[tokio::main]
async fn main() {
    let _app: Router = Router::new()
        .route("/report/{id}", get(report))
        .route("/store", post(store))
        .with_state(Reports { dir: PathBuf::from(".") });
    let parsed: Vec<u8> = parse_all(vec!["1".into(), "2".into()]).await.unwrap();
    assert_eq!(parsed, [1, 2]);
    assert!(parse_all::<u8>(vec!["x".into()]).await.is_err());
    assert_eq!(label("files", (3u8, "items")).await, "files: 3 items");
    assert_eq!(Ledger { entries: vec![2, 3] }.into_total().await, 5);
}
