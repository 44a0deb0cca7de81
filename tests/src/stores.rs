//! The three job stores, made fresh for a test and removed after it: one
//! suite runs on each.

use std::sync::atomic::{AtomicUsize, Ordering};

use lanes::jobs::{Store, StoreOptions};

/// Makes a fresh, empty store; `Drop` removes what it made.
#[allow(async_fn_in_trait)] // used only by these tests, on one runtime
pub trait Backend {
    /// A fresh store, opened with `options`.
    async fn fresh_with(&self, options: StoreOptions) -> Store;
    /// A second handle on the data of the last fresh store, as another
    /// process would open it, with `options` (the memory store is the one
    /// [`Backend::fresh_with`] made, with its options).
    async fn reopen_with(&self, options: StoreOptions) -> Store;

    /// A fresh store with the default options.
    async fn fresh(&self) -> Store {
        self.fresh_with(StoreOptions::new()).await
    }

    /// A second handle with the default options.
    async fn reopen(&self) -> Store {
        self.reopen_with(StoreOptions::new()).await
    }
}

#[derive(Debug, Default)]
pub struct Memory(std::sync::Mutex<Option<Store>>);

impl Backend for Memory {
    async fn fresh_with(&self, options: StoreOptions) -> Store {
        let store = Store::memory_with(options);
        *self.0.lock().unwrap() = Some(store.clone());
        store
    }
    async fn reopen_with(&self, _: StoreOptions) -> Store {
        self.0.lock().unwrap().clone().expect("a store was made")
    }
}

pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[derive(Debug, Default)]
pub struct Sqlite(std::sync::Mutex<Option<std::path::PathBuf>>);

impl Backend for Sqlite {
    async fn fresh_with(&self, options: StoreOptions) -> Store {
        let path = std::env::temp_dir().join(format!("{}.db", unique("lanes_jobs")));
        *self.0.lock().unwrap() = Some(path.clone());
        Store::sqlite_with(&path, options).await.unwrap()
    }
    async fn reopen_with(&self, options: StoreOptions) -> Store {
        let path = self.0.lock().unwrap().clone().expect("a store was made");
        Store::sqlite_with(&path, options).await.unwrap()
    }
}

impl Sqlite {
    /// The file of the last fresh store.
    pub fn path(&self) -> std::path::PathBuf {
        self.0.lock().unwrap().clone().expect("a store was made")
    }
}

impl Drop for Sqlite {
    fn drop(&mut self) {
        if let Some(path) = self.0.lock().unwrap().take() {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
            }
        }
    }
}

#[derive(Debug)]
pub struct Postgres {
    url: String,
    schema: std::sync::Mutex<Option<String>>,
}

impl Backend for Postgres {
    async fn fresh_with(&self, options: StoreOptions) -> Store {
        let schema = crate::test_schema();
        *self.schema.lock().unwrap() = Some(schema.clone());
        Store::postgres_with(&self.url, &schema, options)
            .await
            .unwrap()
    }
    async fn reopen_with(&self, options: StoreOptions) -> Store {
        let schema = self
            .schema
            .lock()
            .unwrap()
            .clone()
            .expect("a store was made");
        Store::postgres_with(&self.url, &schema, options)
            .await
            .unwrap()
    }
}

impl Postgres {
    /// The schema of the last fresh store.
    pub fn schema(&self) -> String {
        self.schema
            .lock()
            .unwrap()
            .clone()
            .expect("a store was made")
    }

    /// Stores in fresh schemas of the database at `url`.
    pub fn new(url: &str) -> Postgres {
        Postgres {
            url: url.to_owned(),
            schema: Default::default(),
        }
    }
}
