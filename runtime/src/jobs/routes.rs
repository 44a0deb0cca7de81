//! The `/jobs` routes: a job's status, its progress as server-sent events,
//! and cancellation; the operator's listing and retry; and the
//! `202 Accepted` answer of an enqueueing handler.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::Stream;

use super::{
    Job, JobId, JobPage, JobQuery, JobState, MOST_JOBS_LISTED, Retried, Store, StoreError,
};

/// How often the event stream looks at the job: the store may be shared
/// with other processes, so changes are read, not pushed.
const EVENTS_EVERY: Duration = Duration::from_millis(200);

/// `GET /jobs/{id}` (the job's status as JSON), `GET /jobs/{id}/events`
/// (server-sent events: `state` when its state changes, `progress` when
/// its progress does, each with the status; the stream ends with the job)
/// and `DELETE /jobs/{id}` (cancel). Unknown and malformed ids are `404`.
///
/// ```
/// let jobs = lanes::jobs::Store::memory(10_000);
/// let app: axum::Router = axum::Router::new().merge(lanes::jobs::router(jobs));
/// ```
pub fn router(store: Store) -> Router {
    Router::new()
        .route("/jobs/{id}", get(status).delete(cancel))
        .route("/jobs/{id}/events", get(events))
        .with_state(store)
}

/// `GET /jobs` (a page of jobs, newest first, as JSON `{"jobs": [...],
/// "next": cursor or null}`; the query `queue`, `state`, `kind` filter it,
/// `limit` sets its size, 1 to 500, default 50, and `after=<next>` asks for
/// the page that follows) and `POST /jobs/{id}/retry` (runs a dead or
/// failed job again now: `200` with its status, `409` in another state,
/// `503` when the store is full, `404` for an unknown id).
///
/// These routes list every job's id, which makes every job's status and
/// cancellation reachable to whoever reaches them: serve them only behind
/// your own authentication, for instance with a middleware as a
/// `route_layer`, as below. [`router`], by contrast, answers only to a
/// caller who already holds a job's id (ids are random).
///
/// ```
/// use axum::{extract::Request, http::StatusCode, middleware::{self, Next}, response::Response};
///
/// async fn operators_only(request: Request, next: Next) -> Result<Response, StatusCode> {
///     let token = request.headers().get("authorization").and_then(|value| value.to_str().ok());
///     if token != Some("Bearer let-me-in") {
///         return Err(StatusCode::UNAUTHORIZED);
///     }
///     Ok(next.run(request).await)
/// }
///
/// let jobs = lanes::jobs::Store::memory(10_000);
/// let app: axum::Router = axum::Router::new()
///     .merge(lanes::jobs::router(jobs.clone()))
///     .merge(lanes::jobs::admin_router(jobs).route_layer(middleware::from_fn(operators_only)));
/// ```
pub fn admin_router(store: Store) -> Router {
    Router::new()
        .route("/jobs", get(list))
        .route("/jobs/{id}/retry", post(retry))
        .with_state(store)
}

/// Why a `/jobs` request has no job to show.
enum Refusal {
    NotFound,
    BadRequest(String),
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(error: StoreError) -> Refusal {
        Refusal::Store(error)
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::NotFound => (StatusCode::NOT_FOUND, "no such job\n").into_response(),
            Refusal::BadRequest(why) => (StatusCode::BAD_REQUEST, why).into_response(),
            Refusal::Store(error) => error.into_response(),
        }
    }
}

/// A malformed id answers as an unknown one: ids are not to be probed.
fn parse(id: &str) -> Result<JobId, Refusal> {
    id.parse().map_err(|_| Refusal::NotFound)
}

async fn status(State(store): State<Store>, Path(id): Path<String>) -> Result<Json<Job>, Refusal> {
    let id = parse(&id)?;
    store.get(id).await?.map(Json).ok_or(Refusal::NotFound)
}

async fn cancel(State(store): State<Store>, Path(id): Path<String>) -> Result<Response, Refusal> {
    let id = parse(&id)?;
    let state = store.cancel(id).await?;
    let job = store.get(id).await?;
    let (Some(state), Some(job)) = (state, job) else {
        return Err(Refusal::NotFound);
    };
    let status = match state {
        JobState::Cancelled => StatusCode::OK,
        // Requested: its worker hears of it at once, and records it
        // cancelled once the body has stopped.
        JobState::Running => StatusCode::ACCEPTED,
        _ => StatusCode::CONFLICT,
    };
    Ok((status, Json(job)).into_response())
}

/// The query of `GET /jobs`; every value is read here, so that a wrong
/// one is answered with what is wrong.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    queue: Option<String>,
    state: Option<String>,
    kind: Option<String>,
    limit: Option<String>,
    after: Option<String>,
}

impl ListParams {
    fn query(self) -> Result<JobQuery, Refusal> {
        let bad = |why: String| Refusal::BadRequest(why + "\n");
        let mut query = JobQuery::new();
        query.queue = self.queue;
        query.kind = self.kind;
        if let Some(state) = self.state {
            query.state = Some(JobState::parse(&state).map_err(|_| {
                bad(format!(
                    "unknown state `{state}`: queued, running, succeeded, failed, dead or cancelled"
                ))
            })?);
        }
        if let Some(limit) = self.limit {
            query.limit = limit
                .parse()
                .ok()
                .filter(|limit| (1..=MOST_JOBS_LISTED).contains(limit))
                .ok_or_else(|| {
                    bad(format!(
                        "`limit` must be from 1 to {MOST_JOBS_LISTED}, not `{limit}`"
                    ))
                })?;
        }
        if let Some(after) = self.after {
            query.after = Some(after.parse().map_err(|e| bad(format!("`after`: {e}")))?);
        }
        Ok(query)
    }
}

async fn list(
    State(store): State<Store>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<JobPage>, Refusal> {
    let Query(params) = params.map_err(|rejection| {
        Refusal::BadRequest(format!(
            "{}: the query takes queue, state, kind, limit and after\n",
            rejection.body_text()
        ))
    })?;
    Ok(Json(store.list(&params.query()?).await?))
}

async fn retry(State(store): State<Store>, Path(id): Path<String>) -> Result<Response, Refusal> {
    let id = parse(&id)?;
    let retried = store.retry(id).await?.ok_or(Refusal::NotFound)?;
    let job = store.get(id).await?.ok_or(Refusal::NotFound)?;
    let status = match retried {
        Retried::Queued => StatusCode::OK,
        Retried::Refused(_) => StatusCode::CONFLICT,
    };
    Ok((status, Json(job)).into_response())
}

async fn events(
    State(store): State<Store>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, Refusal> {
    let id = parse(&id)?;
    let first = store.get(id).await?.ok_or(Refusal::NotFound)?;
    let changes = futures_util::stream::unfold(Watch::Start(first), move |watch| {
        let store = store.clone();
        async move { watch.next(&store, id).await }
    });
    Ok(Sse::new(changes).keep_alive(KeepAlive::default()))
}

/// Where the event stream of one job stands.
enum Watch {
    /// Nothing sent yet.
    Start(Job),
    /// The last status sent.
    Sent(Job),
    Ended,
}

impl Watch {
    /// The next event and what follows it; `None` ends the stream.
    async fn next(self, store: &Store, id: JobId) -> Option<(Result<Event, Infallible>, Watch)> {
        let last = match self {
            Watch::Ended => return None,
            Watch::Start(job) => return Some((Ok(event("state", &job)), after(job))),
            Watch::Sent(last) => last,
        };
        loop {
            // The stream also ends when the service is asked to stop, so
            // that a client following a long job does not hold the drain.
            tokio::select! {
                () = tokio::time::sleep(EVENTS_EVERY) => {}
                () = crate::signal::stopping() => return None,
            }
            let job = match store.get(id).await {
                Ok(Some(job)) => job,
                // Forgotten (a memory store evicts old finished jobs) or
                // unreadable: the stream ends.
                Ok(None) | Err(_) => return None,
            };
            let kind = if job.state != last.state {
                "state"
            } else if job.progress != last.progress || job.message != last.message {
                "progress"
            } else {
                continue;
            };
            return Some((Ok(event(kind, &job)), after(job)));
        }
    }
}

fn after(job: Job) -> Watch {
    if job.state.is_final() {
        Watch::Ended
    } else {
        Watch::Sent(job)
    }
}

fn event(kind: &str, job: &Job) -> Event {
    Event::default()
        .event(kind)
        .json_data(job)
        .expect("a job's status serializes")
}

/// The answer of a handler that enqueued a job: `202 Accepted`,
/// `Location: /jobs/{id}`, and `{"id": "..."}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted(pub JobId);

impl IntoResponse for Accepted {
    fn into_response(self) -> Response {
        let mut response = (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({ "id": self.0 })),
        )
            .into_response();
        let location =
            HeaderValue::try_from(format!("/jobs/{}", self.0)).expect("an id is a valid header");
        response.headers_mut().insert(header::LOCATION, location);
        response
    }
}

/// A store's refusal as an answer: `503` with `Retry-After` when the
/// store or the job's queue holds its bound of unfinished jobs, `500`
/// otherwise (the details go to the log,
/// not to the client).
impl IntoResponse for StoreError {
    fn into_response(self) -> Response {
        match self {
            StoreError::Full { .. } => {
                let mut response = (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the job queue is full; retry later\n",
                )
                    .into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(1));
                response
            }
            error => {
                tracing::error!(%error, "lanes: the job store failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "the job store failed\n").into_response()
            }
        }
    }
}
