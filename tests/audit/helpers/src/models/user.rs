use crate::crypto;

pub struct User {
    hash: String,
}

impl User {
    pub fn check_password(&self, password: &str) -> bool {
        self.verify_with(password)
    }

    fn verify_with(&self, password: &str) -> bool {
        crypto::verify(password, &self.hash)
    }
}
