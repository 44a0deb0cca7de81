//! The live dashboard: one page that shows the lanes, every handler and
//! route, the event-loop lag over the last minutes, and the jobs, updated
//! every second over server-sent events. Its page, styles and script are
//! in the crate (`page.html`): no CDN, no build step, and it works
//! offline.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::Stream;
use serde::Serialize;

use crate::jobs::{
    Job, JobId, JobQuery, JobState, QueueCounts, Registry, Retried, ScheduledKind, Store,
    StoreError,
};

/// The page, with its styles and script.
const PAGE: &str = include_str!("page.html");

/// How often the page is sent a new snapshot.
const EVERY: Duration = Duration::from_secs(1);

/// How long one snapshot serves every viewer: however many pages are
/// open, the store is read at most once in this time.
const FRESH_FOR: Duration = Duration::from_millis(500);

/// Jobs shown in each of the running, failed and dead lists.
const JOBS_SHOWN: usize = 20;

/// The live dashboard, as an axum router to nest under a path of your
/// choice. It is read-only unless [`Dashboard::with_actions`] adds the
/// retry, cancel and delete buttons.
///
/// ```
/// # async fn app() -> Result<axum::Router, lanes::jobs::StoreError> {
/// let store = lanes::jobs::store().await?;
/// let app: axum::Router = axum::Router::new()
///     .nest("/lanes/dashboard", lanes::Dashboard::new().jobs(store).router());
/// # Ok(app) }
/// ```
///
/// It shows what [`stats()`](crate::stats()) holds (lanes: capacity, in
/// flight, queued, shed; each handler and route: calls, p50 and p99 of run
/// time and queue wait, panics, slow and stuck polls, and the stack of the
/// last stuck poll), the worst event-loop lag of each of the last 300
/// seconds as a chart, and with a store the jobs: counts by state for each
/// queue ([`Store::counts`]), this process's outcomes and throughput by
/// kind, the running jobs with their progress, the failed and dead ones
/// with their errors, and the scheduled kinds with their next slots.
///
/// What it serves, under the path it is nested at: the page (`/`), one
/// snapshot as JSON (`/snapshot`), and a snapshot every second as
/// server-sent events (`/events`, event `snapshot`).
#[derive(Clone, Debug, Default)]
pub struct Dashboard {
    jobs: Option<Store>,
    actions: bool,
}

impl Dashboard {
    /// A dashboard of the lanes, handlers, routes and event-loop lag.
    pub fn new() -> Dashboard {
        Dashboard::default()
    }

    /// Shows the jobs of `store` too.
    pub fn jobs(mut self, store: Store) -> Dashboard {
        self.jobs = Some(store);
        self
    }

    /// Adds buttons that retry a dead or failed job, cancel a running one
    /// and delete one that has ended, and the routes behind them
    /// (`POST jobs/{id}/retry`, `POST jobs/{id}/cancel`, `DELETE
    /// jobs/{id}`). Anyone who reaches the dashboard can then use them:
    /// put it behind your own authentication, for instance a
    /// `route_layer` of your own on the router this returns.
    ///
    /// ```
    /// use axum::{extract::Request, http::StatusCode, middleware::{self, Next}, response::Response};
    ///
    /// async fn operators_only(request: Request, next: Next) -> Result<Response, StatusCode> {
    ///     match request.headers().get("authorization") {
    ///         Some(token) if token == "Bearer let-me-in" => Ok(next.run(request).await),
    ///         _ => Err(StatusCode::UNAUTHORIZED),
    ///     }
    /// }
    ///
    /// let dashboard = lanes::Dashboard::new()
    ///     .jobs(lanes::jobs::Store::memory(10_000))
    ///     .with_actions()
    ///     .router()
    ///     .route_layer(middleware::from_fn(operators_only));
    /// let app: axum::Router = axum::Router::new().nest("/ops", dashboard);
    /// ```
    pub fn with_actions(mut self) -> Dashboard {
        self.actions = true;
        self
    }

    /// The router that serves the dashboard.
    pub fn router(mut self) -> Router {
        // Without a store there is no job to act on.
        self.actions &= self.jobs.is_some();
        let actions = self.actions;
        let served = Arc::new(Served {
            dashboard: self,
            registry: Registry::registered(),
            last: tokio::sync::Mutex::new(None),
        });
        let router = Router::new()
            .route("/", get(page))
            .route("/snapshot", get(snapshot))
            .route("/events", get(events));
        let router = if actions {
            router
                .route("/jobs/{id}/retry", post(retry))
                .route("/jobs/{id}/cancel", post(cancel))
                .route("/jobs/{id}", axum::routing::delete(delete))
        } else {
            router
        };
        router.with_state(served)
    }
}

/// What the routes share: the dashboard, the program's `#[background]`
/// kinds (for their schedules) and the last snapshot.
#[derive(Debug)]
struct Served {
    dashboard: Dashboard,
    registry: Registry,
    last: tokio::sync::Mutex<Option<(Instant, String)>>,
}

impl Served {
    /// The snapshot as JSON, made anew when the last one is older than
    /// [`FRESH_FOR`].
    async fn snapshot(&self) -> String {
        let mut last = self.last.lock().await;
        if let Some((at, json)) = &*last
            && at.elapsed() < FRESH_FOR
        {
            return json.clone();
        }
        let json = serde_json::to_string(&self.take().await).expect("a snapshot serializes");
        *last = Some((Instant::now(), json.clone()));
        json
    }

    async fn take(&self) -> Snapshot {
        // The lag is measured by the heartbeat task; a service that has
        // not called a lane fn yet starts it here.
        crate::heartbeat::ensure_running();
        let jobs = match &self.dashboard.jobs {
            None => None,
            Some(store) => {
                let mut view = JobsView::of(store).await.unwrap_or_else(|error| JobsView {
                    error: Some(error.to_string()),
                    ..JobsView::default()
                });
                view.schedules = self.registry.schedules();
                Some(view)
            }
        };
        Snapshot {
            at_ms: crate::jobs::millis::now(),
            stats: crate::stats(),
            lag: crate::heartbeat::lag_history(),
            jobs,
            actions: self.dashboard.actions,
        }
    }

    /// Forgets the last snapshot, so that the next one shows what an
    /// action changed.
    async fn stale(&self) {
        *self.last.lock().await = None;
    }
}

/// What the page shows, at one moment.
#[derive(Serialize)]
struct Snapshot {
    at_ms: i64,
    stats: crate::Stats,
    /// The worst lag of each recent second: (seconds since the epoch, ms).
    lag: Vec<(u64, f64)>,
    jobs: Option<JobsView>,
    actions: bool,
}

#[derive(Default, Serialize)]
struct JobsView {
    /// Every scheduled `#[background]` kind of this program, listed even
    /// when the store cannot be read.
    schedules: Vec<ScheduledKind>,
    queues: Vec<QueueCounts>,
    running: Vec<Job>,
    failed: Vec<Job>,
    dead: Vec<Job>,
    /// Why the store could not be read, if it could not.
    error: Option<String>,
}

impl JobsView {
    async fn of(store: &Store) -> Result<JobsView, StoreError> {
        let newest = |state| async move {
            let query = JobQuery::new().state(state).limit(JOBS_SHOWN);
            store.list(&query).await.map(|page| page.jobs)
        };
        // The schedules come from the program, not the store.
        Ok(JobsView {
            queues: store.counts().await?,
            running: newest(JobState::Running).await?,
            failed: newest(JobState::Failed).await?,
            dead: newest(JobState::Dead).await?,
            ..JobsView::default()
        })
    }
}

/// The page's own policy: nothing from elsewhere, nothing but this server.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'unsafe-inline'; \
     style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

async fn page() -> Response {
    let mut response = Html(PAGE).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn snapshot(State(served): State<Arc<Served>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        served.snapshot().await,
    )
        .into_response()
}

async fn events(
    State(served): State<Arc<Served>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    // Until the service is asked to stop: the page reconnects to the
    // instance that serves next.
    let snapshots = futures_util::stream::unfold(
        (served, tokio::time::interval(EVERY)),
        |(served, mut every)| async move {
            tokio::select! {
                _ = every.tick() => {}
                () = crate::signal::stopping() => return None,
            }
            let event = Event::default()
                .event("snapshot")
                .data(served.snapshot().await);
            Some((Ok(event), (served, every)))
        },
    );
    Sse::new(snapshots).keep_alive(KeepAlive::default())
}

async fn retry(State(served): State<Arc<Served>>, Path(id): Path<String>) -> Response {
    served.act(&id, Action::Retry).await
}

async fn cancel(State(served): State<Arc<Served>>, Path(id): Path<String>) -> Response {
    served.act(&id, Action::Cancel).await
}

async fn delete(State(served): State<Arc<Served>>, Path(id): Path<String>) -> Response {
    served.act(&id, Action::Delete).await
}

/// What a button asks of a job.
#[derive(Clone, Copy)]
enum Action {
    Retry,
    Cancel,
    Delete,
}

/// How an action went with a job that exists.
enum Outcome {
    Done(StatusCode, &'static str),
    /// The job's state does not allow it.
    Refused(JobState),
}

impl Action {
    fn past(self) -> &'static str {
        match self {
            Action::Retry => "retried",
            Action::Cancel => "cancelled",
            Action::Delete => "deleted",
        }
    }
}

impl Served {
    /// `200` (`202` for a running job asked to stop), `409` when the job's
    /// state does not allow it, `404` for an unknown or malformed id.
    async fn act(&self, id: &str, action: Action) -> Response {
        let not_found = || (StatusCode::NOT_FOUND, "no such job\n").into_response();
        let (Some(store), Ok(id)) = (&self.dashboard.jobs, id.parse::<JobId>()) else {
            return not_found();
        };
        let done = |status| Outcome::Done(status, action.past());
        let outcome = match action {
            Action::Retry => store.retry(id).await.map(|retried| {
                retried.map(|retried| match retried {
                    Retried::Queued => done(StatusCode::OK),
                    Retried::Refused(state) => Outcome::Refused(state),
                })
            }),
            Action::Cancel => store.cancel(id).await.map(|state| {
                state.map(|state| match state {
                    JobState::Cancelled => done(StatusCode::OK),
                    JobState::Running => Outcome::Done(StatusCode::ACCEPTED, "asked to stop"),
                    state => Outcome::Refused(state),
                })
            }),
            Action::Delete => store.delete(id).await.map(|state| {
                state.map(|state| match state.is_final() {
                    true => done(StatusCode::OK),
                    false => Outcome::Refused(state),
                })
            }),
        };
        self.stale().await;
        match outcome {
            Ok(Some(Outcome::Done(status, what))) => (status, format!("{what}\n")).into_response(),
            Ok(Some(Outcome::Refused(state))) => (
                StatusCode::CONFLICT,
                format!("a {} job cannot be {}\n", state.as_str(), action.past()),
            )
                .into_response(),
            Ok(None) => not_found(),
            Err(error) => error.into_response(),
        }
    }
}
