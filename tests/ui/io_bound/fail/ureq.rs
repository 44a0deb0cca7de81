#[lanes::io_bound]
async fn fetch() -> String {
    let response = ureq::get("http://127.0.0.1:9/").call();
    format!("{:?}", response.is_ok())
}

fn main() {}
