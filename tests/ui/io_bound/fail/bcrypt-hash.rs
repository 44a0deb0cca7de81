mod bcrypt {
    pub fn hash(password: String, _cost: u32) -> String {
        password
    }
}

#[lanes::io_bound]
async fn register(password: String) -> String {
    bcrypt::hash(password, 12)
}

fn main() {}
