// Several mistakes in one fn are all reported in one compile.

#[lanes::cpu_bound(threads = 2, timeout = "1s")]
async fn resize(image: &[u8]) -> Vec<u8> {
    std::thread::sleep(std::time::Duration::from_millis(1));
    image.to_vec()
}

fn main() {}
