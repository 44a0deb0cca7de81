#[lanes::io_bound]
async fn fetch() -> String {
    let response = reqwest::blocking::get("http://127.0.0.1:9/");
    format!("{:?}", response.is_ok())
}

fn main() {}
