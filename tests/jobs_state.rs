//! `State<S>` arguments of `#[background]` fns: not stored with the job,
//! given by the workers from the states they were started with; a worker
//! that lacks one refuses to start. The async and the sync (blocking-lane)
//! case on memory, on SQLite, and on PostgreSQL when `DATABASE_URL` is set.
//!
//! The kinds here take states, so they live in this test binary alone:
//! every `Registry::registered()` in it sees them.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use lanes::jobs::{Finish, JobState, NewJob, Registry, StartError, Store, WorkerConfig, Workers};
use lanes_tests::stores::{Backend, Memory, Postgres, Sqlite};
use serde_json::json;

/// The state of the async kind: what the greeting says.
#[derive(Clone, Debug)]
struct Greeter {
    greeting: String,
}

/// The state of the sync kind: a shelf shared with the test, which sees
/// what the job put on it.
#[derive(Clone, Debug, Default)]
struct Shelf {
    items: Arc<Mutex<Vec<String>>>,
}

#[lanes::background(queue = "states")]
async fn greet(State(greeter): State<Greeter>, Json(name): Json<String>) -> Result<String, String> {
    tokio::time::sleep(Duration::from_millis(5)).await;
    Ok(format!("{}, {name}!", greeter.greeting))
}

/// Sync: it runs on the blocking lane. Two states, one of them under a
/// plain name and the full path of its type.
#[lanes::background(queue = "states")]
fn shelve(
    State(greeter): State<Greeter>,
    shelf: axum::extract::State<Shelf>,
    item: String,
) -> Result<String, String> {
    let mut items = shelf.items.lock().unwrap();
    items.push(item);
    Ok(format!(
        "{}: {} on the shelf",
        greeter.greeting,
        items.len()
    ))
}

fn greeter(greeting: &str) -> Greeter {
    Greeter {
        greeting: greeting.to_owned(),
    }
}

#[tokio::test]
async fn the_workers_give_states_on_memory() {
    workers_give_their_states(&Memory::default()).await;
}

#[tokio::test]
async fn the_workers_give_states_on_sqlite() {
    workers_give_their_states(&Sqlite::default()).await;
}

#[tokio::test]
async fn the_workers_give_states_on_postgres() {
    let Some(url) = lanes_tests::database_url("the PostgreSQL `State` suite") else {
        return;
    };
    workers_give_their_states(&Postgres::new(&url)).await;
    lanes_tests::drop_test_schemas(&url).await;
}

async fn workers_give_their_states(backend: &impl Backend) {
    // Before any lane runs: the handler test sets the default store.
    lanes_tests::default_store();
    let store = backend.fresh().await;
    // The caller's state is not what the job gets: it is not stored.
    let greeted = greet(
        State(greeter("Hello from the caller")),
        Json("Ada".to_owned()),
    )
    .on(&store)
    .await
    .unwrap()
    .0;
    let shelved = shelve(
        State(greeter("Hello from the caller")),
        State(Shelf::default()),
        "a lamp".to_owned(),
    )
    .on(&store)
    .await
    .unwrap()
    .0;

    // The payloads hold the stored arguments alone. Looked at through a
    // claim, then handed back for the workers to run.
    let claimed = store
        .claim("states", "inspector", Duration::from_secs(30), 10)
        .await
        .unwrap();
    let mut payloads: Vec<_> = claimed.iter().map(|job| job.payload.clone()).collect();
    payloads.sort_by_key(|payload| payload.to_string());
    assert_eq!(
        payloads,
        [json!({"item": "a lamp"}), json!({"name": "Ada"})]
    );
    for job in claimed {
        let back = Finish::Retry {
            error: "looked at".to_owned(),
            at: SystemTime::now(),
        };
        assert!(store.finish(job.id, "inspector", back).await.unwrap());
    }

    let shelf = Shelf::default();
    let config = lanes_tests::fast_workers()
        .queues(["states"])
        // A type registered again replaces the earlier value.
        .state(greeter("Hello from a first registration"))
        .state(greeter("Hello from the workers"))
        .state(shelf.clone());
    let workers = Workers::start(store.clone(), Registry::registered(), config).unwrap();

    let job = lanes_tests::ended(&store, greeted).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert_eq!(job.result, Some(json!("Hello from the workers, Ada!")));
    let job = lanes_tests::ended(&store, shelved).await;
    assert_eq!(job.state, JobState::Succeeded, "{job:?}");
    assert_eq!(
        job.result,
        Some(json!("Hello from the workers: 1 on the shelf"))
    );
    assert_eq!(*shelf.items.lock().unwrap(), ["a lamp"]);
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn an_enqueueing_handler_extracts_its_state_from_the_router() {
    let store = lanes_tests::default_store();
    let app = axum::Router::new()
        .route("/greet", post(greet))
        .with_state(greeter("Hello from the router"));
    let addr = lanes_tests::serve(app).await;
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/greet"))
        .json(&"Grace")
        .send()
        .await
        .unwrap();
    let (id, _) = lanes_tests::accepted(response).await;

    let config = lanes_tests::fast_workers()
        .queues(["states"])
        .state(greeter("Hello from the workers"))
        .state(Shelf::default());
    let workers = Workers::start(store.clone(), Registry::registered(), config).unwrap();
    let job = lanes_tests::ended(&store, id).await;
    assert_eq!(job.result, Some(json!("Hello from the workers, Grace!")));
    workers.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn workers_without_a_state_their_kinds_take_do_not_start() {
    lanes_tests::default_store();
    let refused = lanes::jobs::start_workers(WorkerConfig::default().state(Shelf::default()))
        .await
        .unwrap_err();
    assert!(matches!(refused, StartError::MissingState { .. }));
    assert_eq!(
        refused.to_string(),
        "the workers did not start: the job kinds `jobs_state::greet`, `jobs_state::shelve` \
         take `State<jobs_state::Greeter>`, but the workers were given no \
         `jobs_state::Greeter`; give it to them with `WorkerConfig::default().state(..)`"
    );

    let refused = Workers::start(
        Store::memory(10),
        Registry::registered(),
        WorkerConfig::default()
            .queues(["states"])
            .state(greeter("Hello")),
    )
    .unwrap_err();
    assert_eq!(
        refused.to_string(),
        "the workers did not start: the job kind `jobs_state::shelve` takes \
         `State<jobs_state::Shelf>`, but the workers were given no `jobs_state::Shelf`; give \
         it to them with `WorkerConfig::default().state(..)`"
    );
}

/// A kind is checked only if the workers take its queue. A job of it put
/// into another queue by hand meets a worker without the state: it fails
/// with the fix, and is retried (another worker may have the state).
#[tokio::test]
async fn a_state_is_needed_only_where_its_kind_runs() {
    lanes_tests::default_store();
    let store = Store::memory(10);
    let id = store
        .enqueue(
            NewJob::new("jobs_state::greet", json!({"name": "Bob"}))
                .queue("elsewhere")
                .max_attempts(2),
        )
        .await
        .unwrap();
    let config = lanes_tests::fast_workers().queues(["elsewhere"]);
    let workers = Workers::start(store.clone(), Registry::registered(), config).unwrap();
    let job = lanes_tests::ended(&store, id).await;
    assert_eq!(job.state, JobState::Dead);
    assert_eq!(job.attempts, 2);
    assert_eq!(
        job.error.as_deref(),
        Some(
            "this worker has no `jobs_state::Greeter` for the job's `State` argument; give it \
             to the workers with `WorkerConfig::default().state(..)`"
        )
    );
    workers.shutdown(Duration::from_secs(5)).await;
}
