// An error type that `lanes::TimedOut` does not convert into is reported by
// rustc at the return type, for each lane.

#[derive(Debug)]
struct FetchError;

#[derive(Debug)]
enum ConfigError {
    Missing,
}

#[lanes::io_bound(timeout = "2s")]
async fn fetch(path: String) -> Result<Vec<u8>, FetchError> {
    tokio::fs::read(path).await.map_err(|_| FetchError)
}

#[lanes::blocking(timeout = "2s")]
fn read_config(path: std::path::PathBuf) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|_| ConfigError::Missing)
}

#[lanes::cpu_bound(timeout = "2s")]
fn parse(text: String) -> Result<u64, std::num::ParseIntError> {
    text.trim().parse()
}

fn main() {}
