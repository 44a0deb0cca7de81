//! Integration tests: test code wherever its fns' attributes say.

async fn wait_for_the_server() {
    std::thread::sleep(std::time::Duration::from_millis(10)); // test-hotspot: thread-sleep
}

#[tokio::test]
async fn the_users_route_answers() {
    wait_for_the_server().await;
}
