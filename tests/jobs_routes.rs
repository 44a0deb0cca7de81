//! The `/jobs` routes over a real axum server: an enqueueing handler answers
//! `202 Accepted` with `Location`, the status and the event stream follow
//! the job to its end, and `DELETE` cancels; behind the operator's auth,
//! `GET /jobs` pages through jobs and `POST /jobs/{id}/retry` runs a dead
//! one again.

use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use lanes::jobs::{
    Accepted, Cancelled, JobContext, NewJob, Registry, Store, StoreError, WorkerConfig, Workers,
};
use serde_json::{Value, json};

static FINISH_EXPORT: tokio::sync::Notify = tokio::sync::Notify::const_new();

async fn export(context: JobContext, customer: String) -> Result<Value, Cancelled> {
    assert!(!customer.is_empty());
    context.progress(50, "exporting");
    tokio::select! {
        _ = FINISH_EXPORT.notified() => Ok(json!({"rows": 120})),
        _ = context.cancelled() => Err(Cancelled),
    }
}

/// What a handler that starts a job looks like without the attribute.
async fn start_export(
    State(store): State<Store>,
    customer: String,
) -> Result<Accepted, StoreError> {
    let id = store
        .enqueue(NewJob::new("export", json!(customer)))
        .await?;
    Ok(Accepted(id))
}

/// An export that only ends when cancelled.
async fn endless_export(context: JobContext, _customer: String) -> Result<Value, Cancelled> {
    context.progress(50, "exporting");
    context.cancelled().await;
    Err(Cancelled)
}

async fn service(registry: Registry) -> (String, Store, Workers) {
    let store = Store::memory(100);
    let config = WorkerConfig::default()
        .idle_wait(Duration::from_millis(20))
        .lease(Duration::from_millis(300));
    let workers = Workers::start(store.clone(), registry, config).unwrap();
    let app = Router::new()
        .route("/exports", post(start_export))
        .with_state(store.clone())
        .merge(lanes::jobs::router(store.clone()));
    let addr = lanes_tests::serve(app).await;
    (format!("http://{addr}"), store, workers)
}

/// The `event:` names of a server-sent event stream, in order.
fn event_names(stream: &str) -> Vec<&str> {
    stream
        .lines()
        .filter_map(|line| line.strip_prefix("event: "))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_accepted_followed_to_its_end_and_kept() {
    let (base, _store, workers) = service(Registry::new().register("export", export)).await;
    let client = reqwest::Client::new();

    let response = client
        .post(format!("{base}/exports"))
        .body("acme")
        .send()
        .await
        .unwrap();
    let (_, location) = lanes_tests::accepted(response).await;

    // Follow the events while the job runs; the stream ends with the job.
    let events = tokio::spawn(client.get(format!("{base}{location}/events")).send());
    loop {
        let status: Value = client
            .get(format!("{base}{location}"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["progress"] == 50 {
            assert_eq!(status["state"], "running");
            assert_eq!(status["message"], "exporting");
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    FINISH_EXPORT.notify_one();
    let stream = events.await.unwrap().unwrap();
    assert_eq!(stream.headers()["content-type"], "text/event-stream");
    let stream = stream.text().await.unwrap();
    let names = event_names(&stream);
    assert_eq!(names.first(), Some(&"state"), "{stream}");
    assert_eq!(names.last(), Some(&"state"), "{stream}");
    let last: Value = serde_json::from_str(
        stream
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("data: "))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (last["state"].as_str(), &last["result"]),
        (Some("succeeded"), &json!({"rows": 120}))
    );

    let done: Value = client
        .get(format!("{base}{location}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (done["state"].as_str(), &done["result"]),
        (Some("succeeded"), &json!({"rows": 120}))
    );
    // The status never shows the job's arguments.
    assert!(!done.to_string().contains("acme"), "{done}");
    assert!(done.get("payload").is_none());

    // A finished job cannot be cancelled; unknown and malformed ids are 404.
    assert_eq!(
        client
            .delete(format!("{base}{location}"))
            .send()
            .await
            .unwrap()
            .status(),
        409
    );
    for unknown in ["00000000-0000-4000-8000-000000000000", "1", "..%2F..%2Fetc"] {
        assert_eq!(
            client
                .get(format!("{base}/jobs/{unknown}"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        assert_eq!(
            client
                .delete(format!("{base}/jobs/{unknown}"))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
    }
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_cancels_a_running_job() {
    let (base, store, workers) = service(Registry::new().register("export", endless_export)).await;
    let client = reqwest::Client::new();
    let response = client
        .post(format!("{base}/exports"))
        .body("globex")
        .send()
        .await
        .unwrap();
    let (id, location) = lanes_tests::accepted(response).await;
    while store.get(id).await.unwrap().unwrap().progress < 50 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cancel = client
        .delete(format!("{base}{location}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        cancel.status(),
        202,
        "requested: the worker records it cancelled once the body stops"
    );
    let stream = client
        .get(format!("{base}{location}/events"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(stream.contains(r#""state":"cancelled""#), "{stream}");
    workers.shutdown(Duration::from_secs(5)).await;
}

async fn operators_only(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<axum::response::Response, axum::http::StatusCode> {
    match request.headers().get("authorization") {
        Some(token) if token == "Bearer operator" => Ok(next.run(request).await),
        _ => Err(axum::http::StatusCode::UNAUTHORIZED),
    }
}

/// Polls the job status at `url` until its state is `state`.
async fn until_state(client: &reqwest::Client, url: &str, state: &str) -> Value {
    loop {
        let job: Value = client.get(url).send().await.unwrap().json().await.unwrap();
        if job["state"] == state {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_pages_through_jobs_and_retries_a_dead_one() {
    let store = Store::memory(100);
    let workers = Workers::start(
        store.clone(),
        Registry::new().register("charge", lanes_tests::charge_declined_once),
        WorkerConfig::default().idle_wait(Duration::from_millis(20)),
    )
    .unwrap();
    let app = Router::new()
        .merge(lanes::jobs::router(store.clone()))
        .merge(
            lanes::jobs::admin_router(store.clone())
                .route_layer(axum::middleware::from_fn(operators_only)),
        );
    let base = format!("http://{}", lanes_tests::serve(app).await);
    let client = reqwest::Client::new();
    let operator = |request: reqwest::RequestBuilder| {
        request.header("authorization", "Bearer operator").send()
    };

    let dead = store
        .enqueue(NewJob::new("charge", json!("4242")).max_attempts(1))
        .await
        .unwrap();
    let job_url = format!("{base}/jobs/{dead}");
    let job = until_state(&client, &job_url, "dead").await;
    assert_eq!(job["error"], "card 4242 was declined");
    for n in 0..2 {
        store
            .enqueue(NewJob::new("report", json!(n)).queue("reports"))
            .await
            .unwrap();
    }

    // Without the operator's token, neither the list nor a retry answers.
    assert_eq!(
        client
            .get(format!("{base}/jobs"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let retry_url = format!("{base}/jobs/{dead}/retry");
    assert_eq!(client.post(&retry_url).send().await.unwrap().status(), 401);

    let page = |query: &str| {
        let url = format!("{base}/jobs?{query}");
        let request = operator(client.get(url));
        async move {
            let response = request.await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let first = page("limit=2").await;
    assert_eq!(first["jobs"].as_array().unwrap().len(), 2);
    let next = first["next"].as_str().unwrap();
    let second = page(&format!("limit=2&after={next}")).await;
    assert_eq!(second["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(second["next"], Value::Null);
    assert_eq!(
        second["jobs"][0]["id"],
        dead.to_string(),
        "the oldest comes last"
    );
    let dead_ones = page("state=dead&kind=charge").await;
    assert_eq!(dead_ones["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(
        page("queue=reports").await["jobs"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    for (query, says) in [
        (
            "state=zombie",
            "unknown state `zombie`: queued, running, succeeded, failed, dead or cancelled",
        ),
        ("limit=0", "`limit` must be from 1 to 500, not `0`"),
        (
            "after=page-2",
            "`after`: not a page cursor: pass the `next` of the page before",
        ),
        ("color=red", "unknown field `color`"),
    ] {
        let response = operator(client.get(format!("{base}/jobs?{query}")))
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let text = response.text().await.unwrap();
        assert!(text.contains(says), "{query}: {text}");
    }

    let retried = operator(client.post(&retry_url)).await.unwrap();
    assert_eq!(retried.status(), 200);
    assert_eq!(retried.json::<Value>().await.unwrap()["state"], "queued");
    let job = until_state(&client, &job_url, "succeeded").await;
    assert_eq!(job["result"], "charged 4242");
    // Only a dead or failed job is retried; an unknown one is not found.
    assert_eq!(
        operator(client.post(&retry_url)).await.unwrap().status(),
        409
    );
    let unknown = format!("{base}/jobs/00000000-0000-4000-8000-000000000000/retry");
    assert_eq!(operator(client.post(unknown)).await.unwrap().status(), 404);
    workers.shutdown(Duration::from_secs(5)).await;
}
