mod storage {
    pub fn load_settings() -> String {
        read_raw().trim().to_owned()
    }

    fn read_raw() -> String {
        std::fs::read_to_string("settings.toml").unwrap_or_default()
    }
}

struct User {
    hash: String,
}

impl User {
    fn check_password(&self, password: &str) -> bool {
        bcrypt::verify(password, &self.hash).unwrap_or(false)
    }
}

#[lanes::io_bound]
async fn settings() -> String {
    storage::load_settings()
}

#[lanes::io_bound]
async fn login(user: User, password: String) -> bool {
    user.check_password(&password)
}

fn main() {}
