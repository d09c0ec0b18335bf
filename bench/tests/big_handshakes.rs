//! 1,000 sockets upgraded with a 400 KB request header each cost no more
//! than twice what a socket with an ordinary handshake costs: a socket keeps
//! a bounded copy of its headers, not the head it arrived with.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire_test_support::eventually_async;
use support::*;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const SOCKETS: usize = 1_000;
const HEADER: usize = 400_000;

async fn open(server: &Server, from: usize, pad: Option<&str>) -> Vec<impl Sized> {
    let mut out = Vec::with_capacity(SOCKETS);
    for i in from..from + SOCKETS {
        let mut request = format!("ws://{}/?id=u{i}", server.addr)
            .into_client_request()
            .unwrap();
        if let Some(pad) = pad {
            request.headers_mut().insert("x-pad", pad.parse().unwrap());
        }
        let (ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(request))
            .await
            .expect("connects in time")
            .unwrap();
        out.push(ws);
    }
    out
}

async fn wait_connections(server: &Server, n: usize) {
    let what = format!("the server to reach {n} connections");
    eventually_async(WAIT, &what, || async {
        server.metric("crosswire_connections{").await >= n as f64
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_handshakes_cost_a_socket_no_more_than_twice_an_ordinary_one() {
    let server = Server::start(&["--max-handshake-size", "524288"]).await;
    // A first thousand warms the process up (allocator arenas, maps grown
    // to size); the second measures what an ordinary socket costs.
    let warm = open(&server, 1_000_000, None).await;
    wait_connections(&server, SOCKETS).await;
    let base = server.rss_kib();
    let normal = open(&server, 0, None).await;
    wait_connections(&server, 2 * SOCKETS).await;
    let with_normal = server.rss_kib();

    let pad = "a".repeat(HEADER);
    let big = open(&server, SOCKETS, Some(&pad)).await;
    wait_connections(&server, 3 * SOCKETS).await;
    let with_big = server.rss_kib();

    let per_normal = (with_normal.saturating_sub(base)) as f64 / SOCKETS as f64;
    let per_big = (with_big.saturating_sub(with_normal)) as f64 / SOCKETS as f64;
    println!(
        "RSS base {base} KiB; +{SOCKETS} ordinary sockets {with_normal} KiB ({per_normal:.2} KiB each); \
         +{SOCKETS} sockets with a {HEADER}-byte header {with_big} KiB ({per_big:.2} KiB each)"
    );
    assert!(
        per_big <= 2.0 * per_normal.max(1.0),
        "{per_big:.2} KiB per big-handshake socket vs {per_normal:.2} KiB per ordinary one"
    );
    drop((warm, normal, big));
}
