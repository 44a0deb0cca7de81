//! Names resolved through `use` lines, aliases, re-exports and local modules.

mod paths;
mod pbkdf2;
mod util;

use bcrypt::{hash, verify};
use std::fs as stdfs;
use std::fs::read_to_string;
use std::thread::sleep;
use std::time::Duration;
use tokio::fs;
use tokio::time::timeout;

type StdFile = std::fs::File;

async fn login(password: String, stored: String) -> bool {
    verify(&password, &stored).unwrap_or(false) // hotspot: bcrypt
}

async fn register(password: String) -> String {
    hash(password, 12).unwrap() // hotspot: bcrypt
}

async fn read_all(p: String) -> usize {
    let a = read_to_string(&p).unwrap_or_default(); // hotspot: std-fs
    let b = stdfs::read(&p).unwrap_or_default(); // hotspot: std-fs
    let c = StdFile::open(&p).is_ok(); // hotspot: file-open
    let d = util::sfs::read(&p).unwrap_or_default(); // hotspot: std-fs
    let e = timeout(Duration::from_secs(1), fs::read(&p)).await;
    let f = fs::read_to_string(&p).await.unwrap_or_default();
    let g = paths::sanitize(&p);
    let h = pbkdf2::xor(1, 2);
    a.len() + b.len() + usize::from(c) + d.len() + e.is_ok() as usize + f.len() + g.len() + h as usize
}

async fn pause() {
    sleep(Duration::from_millis(5)); // hotspot: thread-sleep
}

fn main() {}
