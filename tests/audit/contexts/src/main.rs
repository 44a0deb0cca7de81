//! An axum service with blocking calls in every context the audit tells
//! apart: start-up, handlers, middleware, background tasks and tests.

mod api;
mod middleware;

use std::time::Duration;

#[tokio::main]
async fn main() {
    // Start-up: runs once, before the server takes requests.
    let config = std::fs::read_to_string("contexts.toml").unwrap(); // hotspot: std-fs
    tokio::spawn(async move {
        loop {
            std::thread::sleep(Duration::from_secs(60)); // hotspot: thread-sleep
        }
    });
    tokio::spawn(refresh_cache());
    let listener = tokio::net::TcpListener::bind(config.trim()).await.unwrap();
    axum::serve(listener, api::app()).await.unwrap();
    // The server has stopped: this is no longer start-up.
    std::fs::write("stopped.txt", "bye").unwrap(); // hotspot: std-fs
}

async fn refresh_cache() {
    let cache = std::fs::read("cache.bin").unwrap(); // hotspot: std-fs
    drop(cache);
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_config_reads() {
        let text = std::fs::read_to_string("contexts.toml").unwrap(); // test-hotspot: std-fs
        assert!(!text.is_empty());
    }
}
