// Outside a request, a call past its `timeout` returns its error, so the fn
// must return a `Result`: reported at the return type, or at the timeout
// when there is none.

#[lanes::io_bound(timeout = "2s")]
async fn health() -> &'static str {
    "ok"
}

#[lanes::blocking(limit = 4, timeout = "500ms")]
fn touch(path: std::path::PathBuf) {
    let _ = std::fs::write(path, b"");
}

#[lanes::cpu_bound(timeout = "1m")]
fn checksum(bytes: Vec<u8>) -> Option<u32> {
    bytes.into_iter().map(u32::from).reduce(u32::wrapping_add)
}

fn main() {}
