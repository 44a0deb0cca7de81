use bcrypt::verify;

#[lanes::io_bound]
async fn register(password: String) -> String {
    bcrypt::hash(password, 12).unwrap()
}

// Imported by name, the call is still bcrypt's.
#[lanes::io_bound]
async fn login(password: String, stored: String) -> bool {
    verify(&password, &stored).unwrap_or(false)
}

fn main() {}
