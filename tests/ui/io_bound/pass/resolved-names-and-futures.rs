//! Shapes that used to be refused: names that resolve to tokio or to the
//! crate's own items, and futures or closures consumed elsewhere.

use std::time::Duration;

use tokio::fs;
use tokio::time::timeout;

mod paths {
    pub fn sanitize(path: &str) -> String {
        path.replace("..", "")
    }
}

#[lanes::io_bound]
async fn save(path: String) -> usize {
    let clean = paths::sanitize(&path);
    tokio::spawn(fs::write(clean.clone(), "x"));
    let read = timeout(Duration::from_secs(1), fs::read(&clean)).await;
    let later = fs::read(&clean);
    let bytes = later.await.unwrap_or_default();
    let work = move || std::fs::read(clean);
    let offloaded = tokio::task::spawn_blocking(work).await;
    let wrapped = tokio::task::spawn_blocking({
        let path = path.clone();
        move || std::fs::metadata(path).map(|m| m.len())
    })
    .await;
    read.is_ok() as usize + bytes.len() + offloaded.is_ok() as usize + wrapped.is_ok() as usize
}

#[tokio::main]
async fn main() {
    let _ = save("/nonexistent/lanes-ui".to_owned()).await;
}
