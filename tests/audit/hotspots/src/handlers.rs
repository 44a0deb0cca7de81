use std::sync::{Arc, Mutex};
use std::process::Command;

pub async fn user(id: u32) -> String {
    let name = legacy_db::query("select name from users where id = $1", id); // hotspot: legacy_db::query
    let exists = std::fs::metadata("users.db").is_ok();
    format!("{name} {exists}")
}

pub async fn remove(id: u32, hits: Arc<Mutex<u64>>) -> String {
    let mut count = hits.lock().unwrap();
    *count += 1;
    audit_log(id).await; // hotspot: std-guard-across-await
    String::new()
}

pub async fn report() -> Vec<u8> {
    let head = Command::new("git").arg("rev-parse").output().unwrap(); // hotspot: process-output
    let hash = bcrypt::hash("secret", 12).unwrap(); // hotspot: bcrypt
    #[lanes::allow_blocking("the template is 300 bytes, read once per deploy")]
    let template = std::fs::read("report.tpl").unwrap();
    let rows = tokio::fs::read("rows.csv").await.unwrap();
    [head.stdout, hash.into_bytes(), template, rows].concat()
}

async fn audit_log(id: u32) {
    tokio::fs::write("audit.log", id.to_string()).await.unwrap();
}

pub struct Store;

impl Store {
    pub async fn load(&self) -> Vec<u8> {
        std::fs::read("store.bin").unwrap() // hotspot: std-fs
    }

    pub fn load_sync(&self) -> Vec<u8> {
        std::fs::read("store.bin").unwrap()
    }
}
