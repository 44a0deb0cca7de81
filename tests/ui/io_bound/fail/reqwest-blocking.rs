mod reqwest {
    pub mod blocking {
        pub fn get(url: &str) -> String {
            url.to_owned()
        }
    }
}

#[lanes::io_bound]
async fn fetch() -> String {
    reqwest::blocking::get("http://127.0.0.1:9/")
}

fn main() {}
