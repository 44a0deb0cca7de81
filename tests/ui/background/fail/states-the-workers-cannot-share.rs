use std::cell::Cell;

use axum::extract::State;
use lanes::background;

struct Pool {
    connections: Vec<String>,
}

#[background]
async fn refresh(State(pool): State<Pool>) {
    let _ = pool.connections;
}

#[background]
fn count(counter: axum::extract::State<Cell<u32>>) -> Result<u32, String> {
    Ok(counter.get())
}

fn main() {}
