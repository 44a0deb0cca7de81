use axum::extract::Path;

#[utoipa::path(get, path = "/users/{id}", responses((status = 200, body = String)))]
pub async fn show(Path(id): Path<u32>) -> String {
    std::fs::read_to_string(format!("users/{id}")).unwrap_or_default() // hotspot: std-fs
}

pub async fn list() -> String {
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(async {
        std::fs::read_to_string("users/index").unwrap_or_default() // hotspot: std-fs
    });
    let audit = ureq::get("http://audit.internal/list").call(); // hotspot: ureq
    drop(audit);
    tasks.join_next().await.unwrap().unwrap()
}

#[cfg(all(test, feature = "slow-tests"))]
mod slow_tests {
    #[sqlx::test]
    async fn every_user_is_listed() {
        std::thread::sleep(std::time::Duration::from_secs(1)); // test-hotspot: thread-sleep
    }
}
