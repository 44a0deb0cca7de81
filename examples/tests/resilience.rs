//! The README's "Rate limiting and circuit breaking": `lanes` sheds what a
//! lane cannot take and times out a lane call, and two well-kept tower
//! crates add what it does not do, on the same router as `lanes::Watch`:
//! `tower_governor` answers `429` past a quota, and `tower-resilience`'s
//! circuit breaker stops calling a vendor that keeps failing.

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Router, body::Body};
use tower::{ServiceBuilder, ServiceExt};
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::GlobalKeyExtractor;
use tower_resilience::circuitbreaker::classifier::FnClassifier;
use tower_resilience::circuitbreaker::{CircuitBreakerError, CircuitBreakerLayer};

/// Calls that reached the vendor.
static VENDOR_CALLS: AtomicUsize = AtomicUsize::new(0);

/// A vendor that is down: every call fails, after reaching it.
async fn rates() -> Response {
    VENDOR_CALLS.fetch_add(1, Ordering::SeqCst);
    (StatusCode::BAD_GATEWAY, "the rates vendor failed").into_response()
}

async fn health() -> &'static str {
    "ok"
}

/// A 5xx answer is a failure of the vendor's. A fn pointer keeps the
/// breaker's layer `Clone`, as axum asks of a route's layers.
type ServerError = fn(&Result<Response, Infallible>) -> bool;

fn server_error(answer: &Result<Response, Infallible>) -> bool {
    answer
        .as_ref()
        .is_ok_and(|response| response.status().is_server_error())
}

/// The router, as the README composes it.
fn app() -> Router {
    // Open after half of the last 4 calls failed; stay open for 30 s.
    let breaker = CircuitBreakerLayer::builder()
        .failure_classifier_type(FnClassifier::new(server_error as ServerError))
        .failure_rate_threshold(0.5)
        .sliding_window_size(4)
        .minimum_number_of_calls(4)
        .wait_duration_in_open(Duration::from_secs(30))
        .build()
        .expect("a valid circuit breaker");
    let vendor = get(rates).layer(
        ServiceBuilder::new()
            // An open circuit is an error of the breaker's; the route
            // answers it.
            .layer(HandleErrorLayer::new(
                |_: CircuitBreakerError<Infallible>| async {
                    (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the rates vendor is failing; try again later",
                    )
                },
            ))
            .layer(breaker),
    );
    // 10 requests at once, then one more a minute (`per_second` sets the
    // seconds per request), across clients: a service keys by client with
    // the crate's `PeerIpKeyExtractor`.
    let quota = GovernorConfigBuilder::default()
        .key_extractor(GlobalKeyExtractor)
        .per_second(60)
        .burst_size(10)
        .finish()
        .expect("a valid quota");
    Router::new()
        .route("/rates/{currency}", vendor)
        .route("/health", get(health))
        .layer(lanes::Watch::new())
        .layer(GovernorLayer::new(quota))
        // Turns the handlers into services now, once, as `axum::serve` does:
        // a `Router<()>` called directly would build each route's layers
        // (and a fresh breaker) per request.
        .with_state(())
}

async fn status(app: &Router, uri: &str) -> StatusCode {
    let request = Request::get(uri).body(Body::empty()).unwrap();
    app.clone().oneshot(request).await.unwrap().status()
}

#[tokio::test]
async fn a_failing_vendor_trips_the_breaker_and_a_flood_meets_the_quota() {
    let app = app();
    // The breaker counts 4 failures, then opens: the vendor is no longer
    // called, and the route answers 503 at once.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(status(&app, "/rates/USD").await);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::BAD_GATEWAY,
            StatusCode::BAD_GATEWAY,
            StatusCode::BAD_GATEWAY,
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
            StatusCode::SERVICE_UNAVAILABLE,
        ]
    );
    assert_eq!(VENDOR_CALLS.load(Ordering::SeqCst), 4);

    // The quota is 10 at once: 6 spent, 4 left, then 429.
    for _ in 0..4 {
        assert_eq!(status(&app, "/health").await, StatusCode::OK);
    }
    assert_eq!(status(&app, "/health").await, StatusCode::TOO_MANY_REQUESTS);

    // Under both, `Watch` named and timed the routes.
    let stats = lanes::stats();
    let vendor = stats.route("GET /rates/{currency}").expect("watched");
    assert_eq!(vendor.completed, 6);
    assert_eq!(stats.route("GET /health").map(|r| r.completed), Some(4));
}
