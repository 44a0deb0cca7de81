#[lanes::io_bound]
async fn accept_one(listener: std::net::TcpListener) {
    let _ = listener.accept();
}

fn main() {}
