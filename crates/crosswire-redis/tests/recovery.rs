//! Missed-message recovery with the room history in Redis: real nodes on
//! real `redis-server`s, real WebSocket clients. A client that comes back to
//! another node gets what it missed once and in order whatever node sent it;
//! concurrent senders reach an opted-in client in order; a Redis node that
//! held a room's history and died makes recovery say the epoch changed
//! (nothing is passed over), while live messages keep flowing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire::history::HistoryConfig;
use crosswire::protocol::envelope::Codec;
use crosswire::Node;
use crosswire_redis::{RedisBus, Strategy};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::time::Duration;
use support::*;

const LIMIT: Duration = Duration::from_secs(10);

/// Node `name` keeping the history of `chat` in Redis; a connection with
/// `?id=` is bound and joins room `r1`.
async fn node(name: &str, servers: &[&RedisServer], codec: Codec) -> (Node, SocketAddr, RedisBus) {
    let mut cfg = config(servers, Strategy::RoundRobin);
    cfg.server_name = Some(name.to_owned());
    let bus = support::connect(cfg).await;
    let node = Node::builder()
        .server_name(name)
        .codec(codec)
        .bus(bus.clone())
        .history("chat", HistoryConfig::default())
        .build()
        .unwrap();
    let n = node.clone();
    node.on_connection(move |socket, hs| {
        let n = n.clone();
        async move {
            if let Some(id) = hs.param("id") {
                n.set_user_socket(id, &socket).unwrap();
                n.join_room("chat", "r1", id).unwrap();
            }
        }
    });
    let addr = node.listen("127.0.0.1:0").await.unwrap();
    within(LIMIT, node.ready()).await;
    (node, addr, bus)
}

fn resume(epoch: &str, offset: u64) -> String {
    percent_encode(&json!([["chat", "r1", epoch, offset]]).to_string())
}

/// A plain client (the original's frames), bound as `id`, in room `r1`.
async fn plain(node: &Node, addr: SocketAddr, id: &str) -> Ws {
    let ws = ws::connect(addr, &format!("?id={id}")).await;
    eventually(LIMIT, "socket bound", || node.get_socket(id).is_some()).await;
    ws
}

/// Connects an opted-in client as `id`; returns it with its `_cw_joined`
/// payload, the frames before it under `"frames"`.
async fn join(node: &Node, addr: SocketAddr, id: &str, resume: Option<String>) -> (Ws, Value) {
    let mut path = format!("?id={id}&cwRecovery=1");
    if let Some(r) = resume {
        path.push_str("&cwResume=");
        path.push_str(&r);
    }
    let mut ws = ws::connect(addr, &path).await;
    eventually(LIMIT, "socket bound", || node.get_socket(id).is_some()).await;
    let mut frames = Vec::new();
    loop {
        let frame = next_json(&mut ws).await;
        if frame["event"] == "_cw_joined" {
            let mut joined = frame["payload"].clone();
            joined["frames"] = Value::Array(frames);
            return (ws, joined);
        }
        frames.push(frame);
    }
}

async fn drop_client(node: &Node, ws: Ws, id: &str) {
    drop(ws);
    eventually(LIMIT, "socket gone", || node.get_socket(id).is_none()).await;
}

fn send(node: &Node, n: u64) {
    node.to_room("chat", "r1").emit("m", &n).unwrap();
}

fn payloads(frames: &Value) -> Vec<u64> {
    frames
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["payload"].as_u64().unwrap())
        .collect()
}

/// Whether `server` holds the history of `chat`/`r1`.
async fn holds_history(server: &RedisServer) -> bool {
    let client = redis::Client::open(server.url()).unwrap();
    let Ok(mut conn) = client.get_multiplexed_async_connection().await else {
        return false;
    };
    let n: i64 = redis::cmd("EXISTS")
        .arg("cw:h:{4:chat:r1}:m")
        .query_async(&mut conn)
        .await
        .unwrap_or(0);
    n == 1
}

async fn recovery_across_nodes(codec: Codec) {
    let r1 = RedisServer::start();
    let r2 = RedisServer::start();
    let (n1, a1, _b1) = node("n1", &[&r1, &r2], codec).await;
    let (n2, a2, _b2) = node("n2", &[&r1, &r2], codec).await;
    let (n3, a3, _b3) = node("n3", &[&r1, &r2], codec).await;
    let mut p2 = plain(&n2, a2, "p2").await;
    let _p3 = plain(&n3, a3, "p3").await;
    for n in [&n1, &n2, &n3] {
        within(LIMIT, n.ready()).await;
    }
    let (mut a, joined) = join(&n1, a1, "a", None).await;
    assert_eq!(joined["recovery"], "none", "{joined}");
    assert_eq!(joined["offset"], 0);
    let epoch = joined["epoch"].as_str().unwrap().to_owned();
    // The room's history is on exactly one of the two Redis nodes.
    assert!(holds_history(&r1).await ^ holds_history(&r2).await);
    for n in 1..=3 {
        send(&n2, n);
    }
    for n in 1..=3u64 {
        let f = next_json(&mut a).await;
        assert_eq!(
            (f["payload"].as_u64(), f["cwPos"]["offset"].as_u64()),
            (Some(n), Some(n))
        );
        assert_eq!(f["cwPos"]["epoch"], epoch.as_str());
        // Plain clients get the original's frame, byte for byte.
        assert_eq!(
            next_text(&mut p2).await,
            format!(r#"{{"event":"m","payload":{n}}}"#)
        );
    }
    drop_client(&n1, a, "a").await;
    for n in 4..=20 {
        send([&n1, &n2, &n3][(n % 3) as usize], n);
    }
    // Three senders: each one's messages in its order, all of them once.
    let mut seen: Vec<u64> = Vec::new();
    for _ in 4..=20u64 {
        seen.push(next_json(&mut p2).await["payload"].as_u64().unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, (4..=20).collect::<Vec<_>>());
    let (mut a, joined) = join(&n3, a3, "a", Some(resume(&epoch, 3))).await;
    assert_eq!(joined["recovery"], "complete", "{joined}");
    assert_eq!(joined["recovered"], 17);
    assert_eq!(joined["offset"], 20);
    let frames = joined["frames"].as_array().unwrap();
    let offsets: Vec<u64> = frames
        .iter()
        .map(|f| f["cwPos"]["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, (4..=20).collect::<Vec<_>>());
    let mut got = payloads(&joined["frames"]);
    for sender in 0..3 {
        let mine: Vec<u64> = got.iter().copied().filter(|n| n % 3 == sender).collect();
        assert!(mine.windows(2).all(|w| w[0] < w[1]), "{got:?}");
    }
    got.sort_unstable();
    assert_eq!(got, (4..=20).collect::<Vec<_>>());
    assert!(joined["frames"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["cwRecovered"] == true));
    send(&n1, 21);
    let live = next_json(&mut a).await;
    assert_eq!(
        (live["payload"].as_u64(), live["cwPos"]["offset"].as_u64()),
        (Some(21), Some(21))
    );
    assert!(live.get("cwRecovered").is_none());
    nothing_more(&mut a).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_back_on_another_node_gets_what_any_node_sent_once_in_order_msgpack() {
    recovery_across_nodes(Codec::MsgPack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_back_on_another_node_gets_what_any_node_sent_once_in_order_json() {
    recovery_across_nodes(Codec::Json).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_senders_on_two_nodes_reach_an_opted_in_client_in_order_once() {
    let r1 = RedisServer::start();
    let r2 = RedisServer::start();
    let (n1, a1, _b1) = node("n1", &[&r1, &r2], Codec::MsgPack).await;
    let (n2, _, _b2) = node("n2", &[&r1, &r2], Codec::MsgPack).await;
    let (n3, a3, _b3) = node("n3", &[&r1, &r2], Codec::MsgPack).await;
    n2.join_room("chat", "r1", "ghost2").unwrap();
    for n in [&n1, &n2, &n3] {
        within(LIMIT, n.ready()).await;
    }
    // One client on a sending node (its own messages and the other's
    // interleave), one on a node that only receives.
    let (mut a, joined) = join(&n1, a1, "a", None).await;
    let (mut b, _) = join(&n3, a3, "b", None).await;
    let start = joined["offset"].as_u64().unwrap();
    let senders: Vec<_> = [n1.clone(), n2.clone()]
        .into_iter()
        .enumerate()
        .map(|(i, node)| {
            tokio::spawn(async move {
                for k in 0..300u64 {
                    send(&node, (i as u64) * 1000 + k);
                    if k % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for s in senders {
        s.await.unwrap();
    }
    for ws in [&mut a, &mut b] {
        let mut got = Vec::new();
        for expected in start + 1..=start + 600 {
            let f = next_json(ws).await;
            assert_eq!(f["cwPos"]["offset"].as_u64(), Some(expected), "{f}");
            assert!(f.get("cwRecovered").is_none(), "{f}");
            got.push(f["payload"].as_u64().unwrap());
        }
        // Each sender's messages in its own order, none twice.
        for i in 0..2u64 {
            let mine: Vec<u64> = got.iter().copied().filter(|p| p / 1000 == i).collect();
            assert_eq!(mine, (0..300).map(|k| i * 1000 + k).collect::<Vec<_>>());
        }
    }
    nothing_more(&mut a).await;
    nothing_more(&mut b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_redis_node_of_a_history_makes_recovery_incomplete_and_loses_no_live_message() {
    let mut r1 = RedisServer::start();
    let mut r2 = RedisServer::start();
    let (n1, a1, _b1) = node("n1", &[&r1, &r2], Codec::MsgPack).await;
    let (n2, a2, _b2) = node("n2", &[&r1, &r2], Codec::MsgPack).await;
    let mut p2 = plain(&n2, a2, "p2").await;
    within(LIMIT, n1.ready()).await;
    within(LIMIT, n2.ready()).await;
    let (a, joined) = join(&n1, a1, "a", None).await;
    let epoch = joined["epoch"].as_str().unwrap().to_owned();
    for n in 1..=3 {
        send(&n1, n);
    }
    for n in 1..=3u64 {
        assert_eq!(
            next_text(&mut p2).await,
            format!(r#"{{"event":"m","payload":{n}}}"#)
        );
    }
    drop_client(&n1, a, "a").await;
    // Kill the Redis node that holds the room's history (kill -9).
    let home = if holds_history(&r1).await {
        &mut r1
    } else {
        &mut r2
    };
    home.kill();
    // Sends go on: without a position, through the other Redis node.
    for n in 4..=6 {
        send(&n1, n);
    }
    // (A publish that failed over may overtake another: the bus's order.)
    let mut seen: Vec<u64> = Vec::new();
    for _ in 4..=6u64 {
        seen.push(next_json(&mut p2).await["payload"].as_u64().unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, [4, 5, 6]);
    assert!(n1.stats().history_append_failures >= 1);
    // While it is down, a client coming back is told, not deceived.
    let (b, joined) = join(&n2, a2, "a", Some(resume(&epoch, 3))).await;
    assert_eq!(joined["recovery"], "incomplete", "{joined}");
    assert_eq!(payloads(&joined["frames"]), Vec::<u64>::new());
    drop_client(&n2, b, "a").await;
    // It comes back empty: a new epoch, never the old one continued.
    home.restart();
    within(LIMIT, _b1.wait_for_publish_targets(2))
        .await
        .unwrap();
    within(LIMIT, _b2.wait_for_publish_targets(2))
        .await
        .unwrap();
    // Each send is delivered, positioned again once the history's node
    // takes it (its history connection reconnects with a backoff).
    let mut fresh = false;
    for n in 7..=100 {
        send(&n1, n);
        assert_eq!(
            next_text(&mut p2).await,
            format!(r#"{{"event":"m","payload":{n}}}"#)
        );
        if holds_history(home).await {
            fresh = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(fresh, "the history never came back");
    let (mut a, joined) = join(&n2, a2, "a", Some(resume(&epoch, 3))).await;
    assert_eq!(joined["recovery"], "incomplete", "{joined}");
    assert_eq!(joined["reason"], "epoch_changed", "{joined}");
    assert_ne!(joined["epoch"], epoch.as_str());
    // Live messages follow in the new epoch.
    send(&n1, 100);
    let live = next_json(&mut a).await;
    assert_eq!(live["payload"], 100);
    assert_eq!(live["cwPos"]["epoch"], joined["epoch"]);
}

#[tokio::test]
async fn a_history_in_redis_cannot_be_combined_with_signed_envelopes() {
    let r1 = RedisServer::start();
    let bus = support::connect(config(&[&r1], Strategy::RoundRobin)).await;
    let err = Node::builder()
        .bus(bus)
        .bus_secret("s3cret")
        .history("chat", HistoryConfig::default())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("bus_secret"), "{err}");
}
