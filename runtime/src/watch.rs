//! [`Watch`]: one tower layer that gives every route of a router what an
//! `#[io_bound]` fn has (each poll timed, the watchdog, per-route figures),
//! answers `503` and `504` for the lane calls in it, and, when
//! [`Config::quarantine`](crate::Config::quarantine) is on, moves a route
//! that keeps blocking off the event loop.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, RwLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::{Method, Request};
use axum::response::Response;

use crate::config::{Quarantine, lanes};
use crate::lane::Site;
use crate::lane::blocking::run_blocking;
use crate::poll::{IoBound, io_bound};
use crate::shed::{RequestMark, ShedFuture};
use crate::stats::RouteMode;

/// A tower layer for a whole router: every request's future is timed poll
/// by poll under the name of its method and matched route (`GET
/// /users/{id}`), so slow-poll warnings, the watchdog (with the stack of
/// the blocking call) and per-route figures cover handlers and middleware
/// that carry no attribute. An `#[io_bound]` fn inside a route keeps its own,
/// finer name in reports. It also answers what [`ShedLayer`] answers: `503`
/// for a lane call shed, `504` for one past its `timeout`.
///
/// Apply it with [`Router::layer`](axum::Router::layer), after the routes,
/// so that it sees the matched route; a request that matched none is named
/// `GET (no route)`.
///
/// ```
/// use axum::{Router, routing::get};
///
/// async fn rates() -> &'static str {
///     "1.08"
/// }
///
/// let app: Router = Router::new()
///     .route("/rates/{currency}", get(rates))
///     .layer(lanes::Watch::new());
/// ```
///
/// [`ShedLayer`]: crate::ShedLayer
#[derive(Clone, Copy, Debug, Default)]
pub struct Watch;

impl Watch {
    /// The layer; its thresholds and quarantine come from
    /// [`Config`](crate::Config).
    pub fn new() -> Watch {
        Watch
    }
}

impl<S> tower_layer::Layer<S> for Watch {
    type Service = Watched<S>;

    fn layer(&self, inner: S) -> Watched<S> {
        Watched { inner }
    }
}

/// The service [`Watch`] wraps around a router or route.
#[derive(Clone, Debug)]
pub struct Watched<S> {
    inner: S,
}

impl<S, B> tower_service::Service<Request<B>> for Watched<S>
where
    S: tower_service::Service<Request<B>, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = WatchedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let route = Route::of(&request);
        let mark = Arc::new(RequestMark::of_route(&route.site));
        let answered = ShedFuture::new(self.inner.call(request), mark);
        let runs = match route.dispatch() {
            Dispatch::EventLoop { probe } => Runs::EventLoop {
                inner: io_bound(&route.site, answered),
                route,
                probe,
                caught: false,
            },
            Dispatch::Quarantined => Runs::Quarantined {
                inner: Box::pin(off_the_event_loop(&route.site, answered)),
            },
        };
        WatchedFuture { runs }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`Watched`].
    pub struct WatchedFuture<F: Future> {
        #[pin]
        runs: Runs<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = Projected]
    enum Runs<F: Future> {
        EventLoop {
            #[pin]
            inner: IoBound<ShedFuture<F>>,
            route: &'static Route,
            // Whether this call runs on the event loop to probe a
            // quarantined route.
            probe: bool,
            // Whether a slow poll of it has been counted against its route.
            caught: bool,
        },
        Quarantined {
            inner: Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>,
        },
    }
}

impl<F: Future> std::fmt::Debug for WatchedFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (variant, route) = match &self.runs {
            Runs::EventLoop { route, .. } => ("event loop", Some(route.site.name)),
            Runs::Quarantined { .. } => ("blocking pool", None),
        };
        f.debug_struct("WatchedFuture")
            .field("runs", &variant)
            .field("route", &route)
            .finish_non_exhaustive()
    }
}

impl<F> Future for WatchedFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().runs.project() {
            Projected::EventLoop {
                mut inner,
                route,
                probe,
                caught,
            } => {
                let polled = inner.as_mut().poll(cx);
                if !*caught && inner.was_slow() {
                    *caught = true;
                    route.caught_blocking();
                }
                if polled.is_ready() && *probe && !*caught {
                    route.probe_ran_clean();
                }
                polled
            }
            Projected::Quarantined { inner } => inner.as_mut().poll(cx),
        }
    }
}

/// Runs a quarantined route's call on a blocking-pool thread, once the
/// blocking lane and the route's own limit have a place for it (the
/// blocking lane's rules: a caller that goes away leaves the call running,
/// a panic resumes here), and awaits its response.
async fn off_the_event_loop<F>(site: &'static Site, call: F) -> Result<Response, Infallible>
where
    F: Future<Output = Result<Response, Infallible>> + Send + 'static,
{
    let runtime = tokio::runtime::Handle::current();
    run_blocking(site, move || {
        site.record_quarantined_call();
        crate::poll::off_the_event_loop(|| runtime.block_on(call))
    })
    .await
}

/// One route under [`Watch`]: its site, and the catches its quarantine
/// counts.
#[derive(Debug)]
struct Route {
    site: Site,
    quarantine: Mutex<Catches>,
}

/// What a route's quarantine keeps; locked only on a slow call, and by
/// calls of a quarantined route.
#[derive(Debug, Default)]
struct Catches {
    /// When its recent calls had a slow poll, oldest first.
    at: VecDeque<Instant>,
    next_probe: Option<Instant>,
    clean_probes: u32,
}

/// Where one call of a route runs.
enum Dispatch {
    EventLoop { probe: bool },
    Quarantined,
}

/// Every route served, by matched path and then method.
type Routes = HashMap<Box<str>, Vec<(Method, &'static Route)>>;

static ROUTES: RwLock<Option<Routes>> = RwLock::new(None);

/// The methods a route is named by; any other is `OTHER`, so that a client
/// cannot add a series per made-up method.
const METHODS: [Method; 9] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::HEAD,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];

impl Route {
    fn of<B>(request: &Request<B>) -> &'static Route {
        let path = request
            .extensions()
            .get::<MatchedPath>()
            .map_or("(no route)", MatchedPath::as_str);
        let method = if METHODS.contains(request.method()) {
            request.method().clone()
        } else {
            Method::from_bytes(b"OTHER").expect("a valid method name")
        };
        let known = ROUTES.read().unwrap_or_else(|e| e.into_inner());
        if let Some(route) = find(known.as_ref(), path, &method) {
            return route;
        }
        drop(known);
        let mut routes = ROUTES.write().unwrap_or_else(|e| e.into_inner());
        if let Some(route) = find(routes.as_ref(), path, &method) {
            return route;
        }
        let limit = lanes()
            .monitors
            .quarantine
            .map_or(Quarantine::default().limit, |q| q.limit);
        let name: &'static str = Box::leak(format!("{method} {path}").into_boxed_str());
        let route: &'static Route = Box::leak(Box::new(Route {
            site: Site::route(name, limit),
            quarantine: Mutex::new(Catches::default()),
        }));
        routes
            .get_or_insert_with(HashMap::new)
            .entry(path.into())
            .or_default()
            .push((method, route));
        route
    }

    fn dispatch(&'static self) -> Dispatch {
        if self.site.mode() == RouteMode::EventLoop {
            return Dispatch::EventLoop { probe: false };
        }
        let Some(policy) = lanes().monitors.quarantine else {
            return Dispatch::EventLoop { probe: false };
        };
        let now = Instant::now();
        let mut catches = self.catches();
        if catches.next_probe.is_some_and(|due| now < due) {
            return Dispatch::Quarantined;
        }
        catches.next_probe = Some(now + policy.probe_every);
        self.site.record_probe();
        Dispatch::EventLoop { probe: true }
    }

    fn catches(&self) -> std::sync::MutexGuard<'_, Catches> {
        self.quarantine.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One of its calls had a slow poll.
    fn caught_blocking(&'static self) {
        let Some(policy) = lanes().monitors.quarantine else {
            return;
        };
        let now = Instant::now();
        let mut catches = self.catches();
        if self.site.mode() == RouteMode::Quarantined {
            catches.clean_probes = 0;
            tracing::info!(
                route = self.site.name,
                "lanes: a probe of quarantined `{}` on the event loop still blocks; it stays quarantined",
                self.site.name,
            );
            return;
        }
        catches.at.push_back(now);
        while catches
            .at
            .front()
            .is_some_and(|&at| now.duration_since(at) > policy.within)
        {
            catches.at.pop_front();
        }
        if catches.at.len() < policy.after as usize {
            return;
        }
        catches.at.clear();
        catches.clean_probes = 0;
        catches.next_probe = Some(now + policy.probe_every);
        self.site.set_mode(RouteMode::Quarantined);
        tracing::warn!(
            route = self.site.name,
            "lanes: quarantined `{}`: {} of its calls blocked the event loop within {} s; its calls now run on blocking-pool threads, at most {} at once, until {} probes on the event loop run clean. Fix the blocking call the slow-poll and watchdog reports name",
            self.site.name,
            policy.after,
            policy.within.as_secs(),
            policy.limit,
            policy.clean_probes,
        );
    }

    /// A probe of it ran on the event loop with no slow poll.
    fn probe_ran_clean(&'static self) {
        let Some(policy) = lanes().monitors.quarantine else {
            return;
        };
        let mut catches = self.catches();
        catches.clean_probes += 1;
        if catches.clean_probes < policy.clean_probes {
            return;
        }
        catches.clean_probes = 0;
        catches.next_probe = None;
        self.site.set_mode(RouteMode::EventLoop);
        tracing::warn!(
            route = self.site.name,
            "lanes: `{}` is back on the event loop: {} probes in a row ran with no slow poll",
            self.site.name,
            policy.clean_probes,
        );
    }
}

fn find(routes: Option<&Routes>, path: &str, method: &Method) -> Option<&'static Route> {
    routes?
        .get(path)?
        .iter()
        .find(|(known, _)| known == method)
        .map(|(_, route)| *route)
}
