//! The crosswire bench server: the contract of `bench/SCENARIOS.md` (join,
//! room, to, all, echo; rpc and count within one node).
//!
//! ```text
//! cargo run --release -p crosswire-bench --bin bench-server -- --port 9001 --name n1
//! ```

use clap::Parser;
use crosswire::{Node, RoomSend};
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "crosswire bench server (SCENARIOS.md contract)")]
struct Args {
    /// Port to listen on (127.0.0.1 only).
    #[arg(long, env = "PORT", default_value_t = 9001)]
    port: u16,
    /// Node name (the target of `rpc`).
    #[arg(long, env = "NODE_NAME", default_value = "n1")]
    name: String,
    /// Redis URL; repeatable. None = single node without Redis.
    #[arg(long = "redis", env = "REDIS_URLS", value_delimiter = ',')]
    redis: Vec<String>,
    /// Number of nodes in the cluster (expected responses of `count`).
    #[arg(long, env = "NODES")]
    nodes: Option<usize>,
    /// Publish strategy: random, round-robin or fastest.
    #[arg(long)]
    strategy: Option<String>,
    /// Redundant publishing with de-duplication.
    #[arg(long)]
    redundant: bool,
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    if !args.redis.is_empty() {
        return Err(
            "cross-node mode (--redis) needs the Redis bus, which this build does not have yet"
                .into(),
        );
    }
    let nodes = args.nodes.unwrap_or(1);
    if nodes != 1 {
        return Err("--nodes other than 1 needs a bus between nodes".into());
    }
    let node = Node::builder().server_name(args.name.clone()).build()?;

    let n = node.clone();
    node.on_connection(move |socket, hs| {
        let n = n.clone();
        async move {
            match hs.param("id") {
                Some(id) if !id.is_empty() => {
                    let _ = n.set_user_socket(id, &socket);
                }
                _ => socket.close(4011, "missing id"),
            }
        }
    });

    let n = node.clone();
    node.on("join", move |socket, p, reply| {
        let n = n.clone();
        async move {
            let (Some(ns), Some(room)) = (str_field(&p, "ns"), str_field(&p, "room")) else {
                return;
            };
            let ok = socket
                .socket_ids()
                .iter()
                .all(|id| n.join_room(ns, room, id).is_ok());
            if let Some(r) = reply {
                let _ = r.send(&json!({ "ok": ok }));
            }
        }
    })?;

    let n = node.clone();
    node.on("room", move |_s, p, _r| {
        let n = n.clone();
        async move {
            if let (Some(ns), Some(room)) = (str_field(&p, "ns"), str_field(&p, "room")) {
                let data = p.get("data").unwrap_or(&Value::Null);
                let _ = n.broadcast_to_room(ns, room, "room", data, RoomSend::new());
            }
        }
    })?;

    let n = node.clone();
    node.on("to", move |_s, p, _r| {
        let n = n.clone();
        async move {
            if let Some(to) = str_field(&p, "to") {
                let _ = n.to_socket_id(to, "to", p.get("data").unwrap_or(&Value::Null));
            }
        }
    })?;

    let n = node.clone();
    node.on("all", move |_s, p, _r| {
        let n = n.clone();
        async move {
            let _ = n.broadcast("all", p.get("data").unwrap_or(&Value::Null));
        }
    })?;

    node.on("echo", |_s, p, reply| async move {
        if let Some(r) = reply {
            let _ = r.send(&p);
        }
    })?;

    let name = args.name.clone();
    node.on("rpc", move |_s, p, reply| {
        let own = name.clone();
        async move {
            // Single node: the only reachable target is this node itself.
            if let (Some(r), Some(target)) = (reply, str_field(&p, "target")) {
                if target == own {
                    let _ = r.send(p.get("data").unwrap_or(&Value::Null));
                }
            }
        }
    })?;

    let n = node.clone();
    node.on("count", move |_s, p, reply| {
        let n = n.clone();
        async move {
            if let (Some(r), Some(ns), Some(room)) =
                (reply, str_field(&p, "ns"), str_field(&p, "room"))
            {
                let total = n.socket_count_in_room(ns, Some(room), crosswire::Match::Exact);
                let _ = r.send(&json!({ "total": total }));
            }
        }
    })?;

    let addr = node.listen(("127.0.0.1", args.port)).await?;
    println!("bench-server {} listening on {addr}", args.name);

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    node.shutdown(Duration::from_secs(2)).await;
    Ok(())
}
