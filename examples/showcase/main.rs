//! A small axum service in which every route runs on the lane that fits its
//! work (the routes are in `service.rs`). Run it with
//! `cargo run --release --example showcase`, then try the `curl` commands it
//! prints; the README shows what they answer.
//!
//! Set `LANES_SHOWCASE_ADDR` to listen elsewhere than 127.0.0.1:3000, and
//! `LANES_SHOWCASE_DATA` to keep its data elsewhere than the system's
//! temporary folder.

use std::time::Duration;

use lanes_showcase::Showcase;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_target(false).init();
    let data = std::env::var_os("LANES_SHOWCASE_DATA")
        .map_or_else(|| std::env::temp_dir().join("lanes-showcase"), Into::into);
    let showcase = Showcase::open(data.clone()).await?;
    let workers = showcase.start_workers().await?;
    let addr = std::env::var("LANES_SHOWCASE_ADDR").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let addr = listener.local_addr()?;
    println!(
        "lanes showcase listening on http://{addr}, data in {}",
        data.display()
    );
    let json = "-H 'content-type: application/json'";
    let ada = r#"'{"name":"ada","password":"correct horse battery staple"}'"#;
    for command in [
        format!("curl http://{addr}/health"),
        format!("curl -X POST http://{addr}/users {json} -d {ada}"),
        format!("curl -X POST http://{addr}/login {json} -d {ada}"),
        format!("curl http://{addr}/users"),
        format!("curl -X POST http://{addr}/reports/weekly"),
        format!("curl http://{addr}/reports/weekly"),
        format!("curl http://{addr}/blur/256"),
        format!("curl http://{addr}/legacy/answer"),
        format!("curl http://{addr}/rates/USD"),
        format!("curl -s http://{addr}/metrics | grep exchange_rate"),
        format!("curl http://{addr}/lanes/stats"),
        format!("curl -i -X POST http://{addr}/exports/all"),
        format!("curl -N http://{addr}/jobs/<id>/events"),
        format!("curl http://{addr}/jobs/<id>"),
    ] {
        println!("  {command}");
    }
    axum::serve(listener, showcase.router())
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    // Running exports get 10 s to finish; the rest stay queued for the
    // next start.
    workers.shutdown(Duration::from_secs(10)).await;
    Ok(())
}
