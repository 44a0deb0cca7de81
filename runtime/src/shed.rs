//! Load shedding and lane-call timeouts: a lane call that waited past its
//! lane's maximum wait, or ran past its `timeout`, while serving a request
//! ends that request with `503 Service Unavailable` and `Retry-After`, or
//! `504 Gateway Timeout`, through [`ShedLayer`] or [`Watch`](crate::Watch).
//!
//! The layer runs each request inside a task-local scope; a lane call that
//! gives up marks the scope and stays pending, and the layer, seeing the mark
//! after that poll, answers and drops the handler's future, exactly as when
//! a client goes away. Handlers keep their own return types.

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
use crate::timeout::TimedOut;

tokio::task_local! {
    static REQUEST: Arc<RequestMark>;
}

/// How a lane call ended the request it serves, set by that call; and the
/// route under [`Watch`](crate::Watch) that counts its timeouts.
#[derive(Debug, Default)]
pub(crate) struct RequestMark {
    ending: OnceLock<Ending>,
    route: Option<&'static Site>,
}

#[derive(Debug)]
enum Ending {
    Shed { retry_after: Duration },
    TimedOut(TimedOut),
}

impl RequestMark {
    /// The answer a lane call chose for the request, once one has.
    pub(crate) fn answer(&self) -> Option<Response> {
        self.ending.get().map(|ending| match ending {
            Ending::Shed { retry_after } => unavailable(*retry_after),
            Ending::TimedOut(timed_out) => timed_out.clone().into_response(),
        })
    }

    /// A request of `route`, which counts the lane calls in it that time
    /// out.
    pub(crate) fn of_route(route: &'static Site) -> RequestMark {
        RequestMark {
            ending: OnceLock::new(),
            route: Some(route),
        }
    }

    /// `future`, run inside this request's scope.
    pub(crate) fn scope<F: Future>(self: &Arc<Self>, future: F) -> TaskLocalFuture<Arc<Self>, F> {
        REQUEST.scope(self.clone(), future)
    }
}

/// Whether the current task serves a request that can be answered `503`.
pub(crate) fn can_shed() -> bool {
    REQUEST.try_with(|_| ()).is_ok()
}

/// Marks the current request as shed, and never resolves.
pub(crate) async fn shed<T>(site: &'static Site) -> T {
    site.record_shed();
    let retry_after = lanes().settings.retry_after;
    let _ = REQUEST.try_with(|mark| mark.ending.set(Ending::Shed { retry_after }));
    tracing::debug!(
        handler = site.name,
        lane = site.lane.as_str(),
        "lanes: shed a request: the lane stayed full for its whole maximum wait"
    );
    std::future::pending().await
}

/// Marks the current request, if there is one, as timed out: true if it
/// was, and the layer answers `504`.
fn time_out_request(timed_out: TimedOut) -> bool {
    REQUEST
        .try_with(|mark| {
            if let Some(route) = mark.route {
                route.record_timeout();
            }
            let _ = mark.ending.set(Ending::TimedOut(timed_out));
        })
        .is_ok()
}

/// Runs `call` (a lane fn's call) for at most `after`. Past it, a request
/// under a layer is marked for `504` and this never resolves; elsewhere
/// the error is returned.
pub async fn within<T, E, F>(site: &'static Site, after: Duration, call: F) -> Result<T, E>
where
    F: Future<Output = Result<T, E>>,
    E: From<TimedOut>,
{
    match tokio::time::timeout(after, call).await {
        Ok(result) => result,
        Err(_) => {
            site.record_timeout();
            let timed_out = TimedOut::new(site.name, after);
            if time_out_request(timed_out.clone()) {
                std::future::pending().await
            } else {
                Err(E::from(timed_out))
            }
        }
    }
}

/// A tower layer that answers `503 Service Unavailable` with `Retry-After`
/// when a request's `#[blocking]` or `#[cpu_bound]` call cannot enter its
/// lane within the lane's maximum wait ([`Config::cpu_max_wait`],
/// [`Config::blocking_max_wait`]). Without it, such calls wait their turn.
/// A lane call past its `timeout` is answered `504 Gateway Timeout`.
/// [`Watch`](crate::Watch) does all of this too, and times every route's
/// polls; this layer is for a router that wants the answers alone.
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
    /// The layer; its waits and `Retry-After` come from [`Config`](crate::Config).
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
        ShedFuture::new(self.inner.call(request), Arc::default())
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Shed`].
    #[derive(Debug)]
    pub struct ShedFuture<F: Future> {
        #[pin]
        inner: TaskLocalFuture<Arc<RequestMark>, F>,
        mark: Arc<RequestMark>,
    }
}

impl<F: Future> ShedFuture<F> {
    /// `inner`, run inside the request scope `mark`, answered as the lane
    /// calls in it choose.
    pub(crate) fn new(inner: F, mark: Arc<RequestMark>) -> ShedFuture<F> {
        ShedFuture {
            inner: mark.scope(inner),
            mark,
        }
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
        match this.mark.answer() {
            Some(answer) => Poll::Ready(Ok(answer)),
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
