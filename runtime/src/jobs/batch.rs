//! Group commit for the PostgreSQL store: the writes many tasks make at once
//! (enqueues, finishes) are gathered by one writer task into one statement
//! and one commit, instead of a statement and a commit each.
//!
//! Nothing waits to fill a batch: the writer takes whatever arrived while
//! its last statement ran, so a lone write goes out at once, and under load
//! each commit carries many.

use std::future::Future;
use std::sync::Mutex;

use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// Most writes in one statement (PostgreSQL binds at most 65,535 values;
/// SQLite 32,766).
const MOST: usize = 256;

/// Writes waiting for the writer; past this, a writer awaits its turn.
const WAITING: usize = 4096;

/// A write that can go out in one statement with others of its kind.
pub(super) trait GroupWrite: Send + Sized + 'static {
    /// What the write's caller learns.
    type Done: Send + 'static;
    /// Where the writes go.
    type Target: Clone + Send + Sync + 'static;

    /// Carries out `writes` together: one answer each, in their order.
    fn write_all(
        target: &Self::Target,
        writes: &[Self],
    ) -> impl Future<Output = Result<Vec<Self::Done>, StoreError>> + Send;
}

type Request<W> = (
    W,
    oneshot::Sender<Result<<W as GroupWrite>::Done, StoreError>>,
);

/// Hands writes to a writer task on the current tokio runtime.
#[derive(Debug)]
pub(super) struct Batcher<W: GroupWrite> {
    target: W::Target,
    writer: Mutex<Option<mpsc::Sender<Request<W>>>>,
}

impl<W: GroupWrite> Batcher<W> {
    pub(super) fn new(target: W::Target) -> Batcher<W> {
        Batcher {
            target,
            writer: Mutex::new(None),
        }
    }

    /// Writes `write` with whatever others are waiting, and returns once
    /// its statement has committed.
    pub(super) async fn write(&self, write: W) -> Result<W::Done, StoreError> {
        let (answer, answered) = oneshot::channel();
        let mut request = (write, answer);
        // A writer ends with the runtime it ran on (a store kept across
        // runtimes, as in tests): then one is started on this runtime.
        for _ in 0..2 {
            match self.writer().send(request).await {
                Ok(()) => {
                    return answered.await.unwrap_or_else(|_| {
                        Err(StoreError::Database(
                            "the job store's writer stopped before the write was answered \
                             (its runtime shut down, or it panicked)"
                                .to_owned(),
                        ))
                    });
                }
                Err(mpsc::error::SendError(unsent)) => request = unsent,
            }
        }
        Err(StoreError::Database(
            "the job store's writer could not start: this runtime is shutting down".to_owned(),
        ))
    }

    /// The running writer, or a new one on this runtime.
    fn writer(&self) -> mpsc::Sender<Request<W>> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(running) = writer.as_ref().filter(|w| !w.is_closed()) {
            return running.clone();
        }
        let (sender, requests) = mpsc::channel(WAITING);
        tokio::spawn(write_loop::<W>(self.target.clone(), requests));
        *writer = Some(sender.clone());
        sender
    }
}

/// Ends when the batcher, and with it every sender, is dropped.
async fn write_loop<W: GroupWrite>(target: W::Target, mut requests: mpsc::Receiver<Request<W>>) {
    let mut batch = Vec::with_capacity(MOST);
    while requests.recv_many(&mut batch, MOST).await > 0 {
        let (writes, answers): (Vec<W>, Vec<_>) = batch.drain(..).unzip();
        match W::write_all(&target, &writes).await {
            Ok(done) => {
                debug_assert_eq!(done.len(), answers.len());
                for (answer, done) in answers.into_iter().zip(done) {
                    let _ = answer.send(Ok(done));
                }
            }
            Err(error) => {
                for answer in answers {
                    let _ = answer.send(Err(error.clone()));
                }
            }
        }
    }
}
