//! The load generator: HTTP/1.1 keep-alive connections to a server on
//! 127.0.0.1, each request timed. Every loop is bounded in count or time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;

/// One client connection.
pub(crate) struct Connection {
    sender: SendRequest<Empty<Bytes>>,
}

impl Connection {
    pub(crate) async fn open(addr: SocketAddr) -> Connection {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect to the bench server");
        stream.set_nodelay(true).expect("set TCP_NODELAY");
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP/1.1 handshake");
        tokio::spawn(connection);
        Connection { sender }
    }

    /// GETs `path`, reads the whole answer, and returns how long it took.
    pub(crate) async fn get(&mut self, path: &str) -> Duration {
        let start = Instant::now();
        self.sender
            .ready()
            .await
            .expect("the connection stays open");
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, "127.0.0.1")
            .body(Empty::new())
            .expect("a valid request");
        let response = self
            .sender
            .send_request(request)
            .await
            .expect("the server answers");
        assert!(
            response.status().is_success(),
            "{path} answered {}",
            response.status()
        );
        response.into_body().collect().await.expect("a whole body");
        start.elapsed()
    }
}

/// `n` requests to `path` sent at the same moment on `n` open connections:
/// the time until the last answer.
pub(crate) async fn burst(addr: SocketAddr, path: &'static str, n: usize) -> Duration {
    let mut connections = Vec::with_capacity(n);
    for _ in 0..n {
        connections.push(Connection::open(addr).await);
    }
    let start = Instant::now();
    let requests: Vec<_> = connections
        .into_iter()
        .map(|mut connection| tokio::spawn(async move { connection.get(path).await }))
        .collect();
    for request in requests {
        request.await.expect("a request task");
    }
    start.elapsed()
}

/// `clients` connections each sending `path` back to back for `length`:
/// the number of answers.
pub(crate) async fn closed_loop(
    addr: SocketAddr,
    path: &'static str,
    clients: usize,
    length: Duration,
) -> u64 {
    let deadline = Instant::now() + length;
    let loops: Vec<_> = (0..clients)
        .map(|_| {
            tokio::spawn(async move {
                let mut connection = Connection::open(addr).await;
                let mut answers = 0u64;
                while Instant::now() < deadline {
                    connection.get(path).await;
                    answers += 1;
                }
                answers
            })
        })
        .collect();
    let mut total = 0;
    for each in loops {
        total += each.await.expect("a client task");
    }
    total
}

/// `clients` connections each sending `paths[0]`, `paths[1]`, `paths[0]`, ..
/// back to back for `length`: the latencies of each path. Interleaving
/// request by request exposes both paths to the same moments of a noisy
/// machine.
pub(crate) async fn alternating(
    addr: SocketAddr,
    paths: [&'static str; 2],
    clients: usize,
    length: Duration,
) -> [Vec<Duration>; 2] {
    let deadline = Instant::now() + length;
    let loops: Vec<_> = (0..clients)
        .map(|client| {
            tokio::spawn(async move {
                let mut connection = Connection::open(addr).await;
                let mut latencies = [Vec::new(), Vec::new()];
                // Half the clients start with each path.
                let mut turn = client % 2;
                while Instant::now() < deadline {
                    latencies[turn].push(connection.get(paths[turn]).await);
                    turn = 1 - turn;
                }
                latencies
            })
        })
        .collect();
    let mut all = [Vec::new(), Vec::new()];
    for each in loops {
        let [first, second] = each.await.expect("a client task");
        all[0].extend(first);
        all[1].extend(second);
    }
    all
}

/// Latencies of `path` probed on one connection every `pause` for `length`.
pub(crate) async fn probe(
    addr: SocketAddr,
    path: &'static str,
    pause: Duration,
    length: Duration,
) -> Vec<Duration> {
    let deadline = Instant::now() + length;
    let mut connection = Connection::open(addr).await;
    let mut latencies = Vec::new();
    while Instant::now() < deadline {
        latencies.push(connection.get(path).await);
        tokio::time::sleep(pause).await;
    }
    latencies
}

/// The `q` quantile (0.0..=1.0) of `samples`, nearest rank.
pub(crate) fn quantile(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    let rank = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len());
    samples[rank - 1]
}
