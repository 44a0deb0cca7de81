//! Helpers shared by the integration tests: a real axum server on a free
//! loopback port.

use std::net::SocketAddr;

/// Serves `app` on 127.0.0.1 on a free port, on the current runtime, and
/// returns its address.
pub async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener
        .local_addr()
        .expect("a bound listener has an address");
    tokio::spawn(async move {
        axum::serve(listener, app)
            .await
            .expect("the test server runs")
    });
    addr
}
