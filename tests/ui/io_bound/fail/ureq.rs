mod ureq {
    pub fn get(url: &str) -> String {
        url.to_owned()
    }
}

#[lanes::io_bound]
async fn fetch() -> String {
    ureq::get("http://127.0.0.1:9/")
}

fn main() {}
