use axum::extract::{Path, Query};
use lanes::background;

#[derive(serde::Serialize, serde::Deserialize)]
struct Page {
    number: u32,
    size: u32,
}

#[background]
async fn archive(_: String, Path((team, ..)): Path<(String, u32)>) {
    let _ = team;
}

#[background]
async fn reindex(Query(Page { number, .. }): Query<Page>, ref label: String) {
    let _ = (number, label);
}

fn main() {}
