#[lanes::io_bound]
async fn ping() -> bool {
    std::net::TcpStream::connect("127.0.0.1:6379").is_ok()
}

fn main() {}
