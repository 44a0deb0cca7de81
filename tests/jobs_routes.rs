//! The `/jobs` routes over a real axum server: an enqueueing handler answers
//! `202 Accepted` with `Location`, the status and the event stream follow
//! the job to its end, and `DELETE` cancels.

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
