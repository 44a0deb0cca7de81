//! Sync helpers of the crate, 1 to 4 calls deep, methods and `self.method`,
//! in other modules; helpers that offload or return futures stay clean.

mod crypto;
mod models;
mod storage;

use models::user::User;

async fn login(user: User, password: String) -> bool {
    user.check_password(&password) // hotspot: pbkdf2
}

async fn sign_up(password: String) -> String {
    crypto::hash_secret(&password) // hotspot: argon2
}

async fn upload(name: String) -> usize {
    storage::Directory::scan(&name).len() // hotspot: std-fs
}

async fn settings() -> String {
    storage::load_settings() // hotspot: std-fs
}

async fn fine(password: String) {
    crypto::hash_in_background(password);
    storage::later().await;
    let _ = crypto::checksum(b"abc");
}

fn main() {}
