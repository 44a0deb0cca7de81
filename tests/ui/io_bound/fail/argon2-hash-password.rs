struct Argon2;

impl Argon2 {
    fn hash_password(&self, password: &[u8]) -> String {
        String::from_utf8_lossy(password).into_owned()
    }
}

#[lanes::io_bound]
async fn register(password: String) -> String {
    Argon2.hash_password(password.as_bytes())
}

fn main() {}
