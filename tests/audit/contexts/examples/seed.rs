//! An example: test code, however it is written.

#[tokio::main]
async fn main() {
    std::fs::write("users/1", "ada").unwrap(); // test-hotspot: std-fs
}
