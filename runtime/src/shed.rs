//! Load shedding: a lane call that waited past its lane's maximum wait while
//! serving a request ends that request with `503 Service Unavailable` and
//! `Retry-After`, through [`ShedLayer`].
//!
//! The layer runs each request inside a task-local scope; a lane call that
//! gives up marks the scope and stays pending, and the layer, seeing the mark
//! after that poll, answers `503` and drops the handler's future, exactly as
//! when a client goes away. Handlers keep their own return types.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::task::futures::TaskLocalFuture;

use crate::config::lanes;
use crate::lane::Site;

tokio::task_local! {
    static REQUEST: Arc<ShedMark>;
}

/// Set by the lane call that shed the request.
#[derive(Debug, Default)]
struct ShedMark(OnceLock<Duration>);

/// Whether the current task serves a request that can be answered `503`.
pub(crate) fn can_shed() -> bool {
    REQUEST.try_with(|_| ()).is_ok()
}

/// Marks the current request as shed, and never resolves.
pub(crate) async fn shed<T>(site: &'static Site) -> T {
    site.record_shed();
    let retry_after = lanes().settings.retry_after;
    let _ = REQUEST.try_with(|mark| mark.0.set(retry_after));
    tracing::debug!(
        handler = site.name,
        lane = site.lane.as_str(),
        "lanes: shed a request: the lane stayed full for its whole maximum wait"
    );
    std::future::pending().await
}

/// A tower layer that answers `503 Service Unavailable` with `Retry-After`
/// when a request's `#[blocking]` or `#[cpu_bound]` call cannot enter its
/// lane within the lane's maximum wait ([`Config::cpu_max_wait`],
/// [`Config::blocking_max_wait`]). Without it, such calls wait their turn.
///
/// ```
/// use axum::{Router, routing::get};
///
/// #[lanes::cpu_bound]
/// fn render() -> String {
///     "done".repeat(1000)
/// }
///
/// let app: Router = Router::new()
///     .route("/render", get(render))
///     .layer(lanes::ShedLayer::new());
/// ```
///
/// [`Config::cpu_max_wait`]: crate::Config::cpu_max_wait
/// [`Config::blocking_max_wait`]: crate::Config::blocking_max_wait
#[derive(Clone, Copy, Debug, Default)]
pub struct ShedLayer;

impl ShedLayer {
    pub fn new() -> ShedLayer {
        ShedLayer
    }
}

impl<S> tower_layer::Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Shed<S> {
        Shed { inner }
    }
}

/// The service [`ShedLayer`] wraps around a router or route.
#[derive(Clone, Debug)]
pub struct Shed<S> {
    inner: S,
}

impl<S, B> tower_service::Service<Request<B>> for Shed<S>
where
    S: tower_service::Service<Request<B>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ShedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let mark = Arc::new(ShedMark::default());
        ShedFuture {
            inner: REQUEST.scope(mark.clone(), self.inner.call(request)),
            mark,
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Shed`].
    #[derive(Debug)]
    pub struct ShedFuture<F: Future> {
        #[pin]
        inner: TaskLocalFuture<Arc<ShedMark>, F>,
        mark: Arc<ShedMark>,
    }
}

impl<F> Future for ShedFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(response) = this.inner.poll(cx) {
            return Poll::Ready(response);
        }
        match this.mark.0.get() {
            Some(retry_after) => Poll::Ready(Ok(unavailable(*retry_after))),
            None => Poll::Pending,
        }
    }
}

fn unavailable(retry_after: Duration) -> Response {
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let mut response = (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the server is at capacity; retry after {seconds} s\n"),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        for (after, header) in [(500, "1"), (1000, "1"), (1001, "2"), (2500, "3"), (0, "0")] {
            let response = unavailable(Duration::from_millis(after));
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(
                response.headers()[header::RETRY_AFTER],
                header,
                "{after} ms"
            );
        }
    }
}
