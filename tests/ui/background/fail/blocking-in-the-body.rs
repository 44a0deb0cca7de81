use std::time::Duration;

use lanes::background;

// Jobs of an async fn run on a tokio worker, beside the handlers.
#[background]
async fn cleanup(dir: String) {
    std::thread::sleep(Duration::from_secs(1));
    let _ = std::fs::remove_dir_all(dir);
}

// Jobs of a plain fn run on the blocking lane: blocking is fine, `.await` is not.
#[background]
fn purge(dir: String) {
    std::fs::remove_dir_all(&dir).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
}

fn main() {}
