//! The crosswire bench server: the contract of `docs/benchmarks.md` (join,
//! room, to, all, echo; rpc and count within one node).
//!
//! ```text
//! cargo run --release -p crosswire-bench --bin bench-server -- --port 9001 --name n1
//! cargo run --release -p crosswire-bench --bin bench-server -- --port 9001 --metrics-port 9002
//! cargo run --release -p crosswire-bench --bin bench-server -- --tls-cert fullchain.pem --tls-key privkey.pem
//! cargo run --release -p crosswire-bench --bin bench-server -- --redis rediss://127.0.0.1:6380 --redis-ca ca.pem
//! cargo run --release -p crosswire-bench --bin bench-server -- --history bench --history-max-messages 5000
//! cargo run --release -p crosswire-bench --bin bench-server -- --redis-cluster redis://127.0.0.1:7000,redis://127.0.0.1:7001
//! ```
//!
//! Port 0 picks a free port; the chosen ones are printed
//! (`bench-server n1 metrics on 127.0.0.1:…`, then `… listening on …`).

use clap::Parser;
use crosswire::{Node, Socket};
use crosswire_redis::{RedisBus, RedisBusConfig};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(about = "crosswire bench server (the contract of docs/benchmarks.md)")]
struct Args {
    /// Port to listen on (127.0.0.1 only).
    #[arg(long, env = "PORT", default_value_t = 9001)]
    port: u16,
    /// Node name (the target of `rpc`).
    #[arg(long, env = "NODE_NAME", default_value = "n1")]
    name: String,
    /// Redis URL (`redis://` or `rediss://` for TLS); repeatable. None =
    /// single node without Redis.
    #[arg(long = "redis", env = "REDIS_URLS", value_delimiter = ',')]
    redis: Vec<String>,
    /// NATS server URL (`nats://host:port`); repeatable for a NATS cluster.
    /// Not with --redis.
    #[arg(long = "nats", value_delimiter = ',', conflicts_with = "redis")]
    nats: Vec<String>,
    /// Seed URLs of a Redis Cluster (Redis 7+, sharded pub/sub); the
    /// masters are found from them. Not with --redis or --nats; the
    /// --redis-ca / --redis-client-* flags apply.
    #[arg(
        long = "redis-cluster",
        value_delimiter = ',',
        value_name = "URL",
        conflicts_with_all = ["redis", "nats"]
    )]
    redis_cluster: Vec<String>,
    /// PEM certificate of the authority that signed the `rediss://`
    /// servers' certificates (default: the system's trusted ones).
    #[arg(long, value_name = "PATH")]
    redis_ca: Option<PathBuf>,
    /// PEM client certificate for `rediss://` servers that require one
    /// (`tls-auth-clients yes`); needs --redis-client-key.
    #[arg(long, value_name = "PATH", requires = "redis_client_key")]
    redis_client_cert: Option<PathBuf>,
    /// PEM private key of --redis-client-cert.
    #[arg(long, value_name = "PATH", requires = "redis_client_cert")]
    redis_client_key: Option<PathBuf>,
    /// Serve `wss://` with this PEM certificate chain (the server's
    /// certificate first); needs --tls-key.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Number of nodes in the cluster (expected responses of `count`).
    #[arg(long, env = "NODES")]
    nodes: Option<usize>,
    /// Publish strategy: random, round-robin or fastest.
    #[arg(long)]
    strategy: Option<String>,
    /// Redundant publishing with de-duplication.
    #[arg(long)]
    redundant: bool,
    /// Also serve `/metrics` (Prometheus text) and `/health` on this port
    /// (127.0.0.1 only).
    #[arg(long)]
    metrics_port: Option<u16>,
    #[command(flatten)]
    limits: crosswire::cli::LimitArgs,
    #[command(flatten)]
    http: crosswire::cli::HttpApiArgs,
    /// Most cross-server calls waiting at once (default: crosswire's 10 000).
    #[arg(long)]
    max_pending_calls: Option<usize>,
    /// Timeout of the `rpc` and `count` cross-server calls in milliseconds
    /// (default: crosswire's 5000).
    #[arg(long)]
    call_timeout_ms: Option<u64>,
    /// Keep a history of the rooms of these namespaces (comma-separated),
    /// for missed-message recovery (`loadgen recovery`): in memory, or in
    /// Redis with --redis (each room's history on one of the Redis nodes).
    #[arg(long = "presence", value_name = "NS", value_delimiter = ',')]
    /// Share the room membership of these namespaces with the cluster
    /// (room presence, for `loadgen presence`).
    presence: Vec<String>,
    /// One session per socket id across the cluster (a second login closes
    /// the first with 4012).
    #[arg(long)]
    one_session: bool,
    /// How messages travel between nodes: `compatible` (the original's
    /// wire, every node receives every room and socket-id message) or
    /// `by-host` (each node receives only what it hosts).
    #[arg(long, value_enum, default_value_t = RoutingArg::Compatible)]
    routing: RoutingArg,
    /// Worker threads of the runtime (default: one per core). When K
    /// nodes share a machine, cores / K avoids handing every message
    /// between more threads than there are cores.
    #[arg(long, value_name = "N")]
    worker_threads: Option<usize>,
    /// Codec of the bus envelopes: `msgpack` (the default, the original's
    /// `enableRedisDataCompression: true`) or `json`. Every node of a
    /// cluster must use the same.
    #[arg(long, value_enum, default_value_t = CodecArg::Msgpack)]
    codec: CodecArg,
    /// Membership: announce every MS milliseconds, drop a silent node after
    /// TIMEOUT_MS (default 2000,7000).
    #[arg(long, value_name = "MS,TIMEOUT_MS", value_delimiter = ',')]
    membership_ms: Vec<u64>,
    #[arg(long = "history", value_name = "NS", value_delimiter = ',')]
    history: Vec<String>,
    /// Most messages the history keeps per room (default: crosswire's 1000).
    #[arg(long, value_name = "N", requires = "history")]
    history_max_messages: Option<usize>,
    /// How long the history keeps a message, in milliseconds (default:
    /// crosswire's 300 000).
    #[arg(long, value_name = "MS", requires = "history")]
    history_max_age_ms: Option<u64>,
}

/// `--codec`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum CodecArg {
    /// MessagePack.
    Msgpack,
    /// JSON.
    Json,
}

/// `--routing`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum RoutingArg {
    /// The original's routing.
    Compatible,
    /// Routing by host.
    ByHost,
}

fn str_field<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(n) = args.worker_threads {
        runtime.worker_threads(n.max(1));
    }
    let runtime = match runtime.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench-server: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Plainly, not as `Debug` (which would print a string in quotes).
            eprintln!("bench-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The TLS settings of the `rediss://` nodes, from the flags.
fn redis_tls(args: &Args) -> Result<Option<crosswire_redis::RedisTls>, String> {
    let client = args
        .redis_client_cert
        .as_deref()
        .zip(args.redis_client_key.as_deref());
    crosswire_redis::RedisTls::from_pem_files(args.redis_ca.as_deref(), client)
}

/// The history settings of `--history`, checked against the other flags.
fn history(args: &Args) -> Result<Option<crosswire::history::HistoryConfig>, String> {
    if args.history.is_empty() {
        return Ok(None);
    }
    if let Some(ns) = args.history.iter().find(|ns| ns.is_empty()) {
        return Err(format!("--history: empty namespace name {ns:?}"));
    }
    let mut config = crosswire::history::HistoryConfig::default();
    if let Some(max) = args.history_max_messages {
        if max == 0 {
            return Err("--history-max-messages must be at least 1".into());
        }
        config.max_messages = max;
    }
    if let Some(ms) = args.history_max_age_ms {
        if ms == 0 {
            return Err("--history-max-age-ms must be at least 1".into());
        }
        config.max_age = Duration::from_millis(ms);
    }
    Ok(Some(config))
}

/// "cannot listen on ADDR: CAUSE".
fn listen_error(addr: &str, e: &dyn std::fmt::Display) -> String {
    format!("cannot listen on {addr}: {e}")
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let clustered =
        !args.redis.is_empty() || !args.nats.is_empty() || !args.redis_cluster.is_empty();
    let nodes = args.nodes.unwrap_or(if clustered { 2 } else { 1 }).max(1);
    let mut builder = args
        .limits
        .apply(Node::builder().server_name(args.name.clone()));
    if let Some(max) = args.max_pending_calls {
        builder = builder.max_pending_cross_server_calls(max);
    }
    for ns in &args.presence {
        builder = builder.presence(ns.clone());
    }
    builder = builder.one_session_per_id(args.one_session);
    builder = builder.codec(match args.codec {
        CodecArg::Msgpack => crosswire::protocol::envelope::Codec::MsgPack,
        CodecArg::Json => crosswire::protocol::envelope::Codec::Json,
    });
    if args.routing == RoutingArg::ByHost {
        builder = builder.routing(crosswire::Routing::ByHost);
    }
    match args.membership_ms[..] {
        [] => {}
        [every, timeout] if every > 0 && timeout > every => {
            builder =
                builder.membership(Duration::from_millis(every), Duration::from_millis(timeout));
        }
        _ => return Err("--membership-ms takes MS,TIMEOUT_MS with 0 < MS < TIMEOUT_MS".into()),
    }
    if let Some(config) = history(&args)? {
        for ns in &args.history {
            builder = builder.history(ns.clone(), config);
        }
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        builder = builder.tls(crosswire::config::TlsConfig::from_pem_files(cert, key)?);
    }
    let call_timeout = args.call_timeout_ms.map_or(
        crosswire::cross_server::DEFAULT_TIMEOUT,
        Duration::from_millis,
    );
    if !args.redis_cluster.is_empty() {
        let mut config =
            crosswire_redis::RedisClusterConfig::new(args.redis_cluster.iter().cloned());
        config.server_name = Some(args.name.clone());
        config.tls = redis_tls(&args)?;
        builder = builder.bus(crosswire_redis::RedisClusterBus::connect(config).await?);
    } else if !args.nats.is_empty() {
        let mut config = crosswire_nats::NatsBusConfig::new(args.nats.iter().cloned());
        config.name = Some(args.name.clone());
        builder = builder.bus(crosswire_nats::NatsBus::connect(config).await?);
    } else if args.redis.is_empty() {
        if nodes != 1 {
            return Err("--nodes other than 1 needs --redis, --redis-cluster or --nats".into());
        }
    } else {
        let mut config = RedisBusConfig::new(args.redis.iter().cloned());
        config.server_name = Some(args.name.clone());
        config.redundant = args.redundant;
        config.tls = redis_tls(&args)?;
        if let Some(s) = &args.strategy {
            config.strategy = serde_json::from_value(Value::String(s.clone()))
                .map_err(|_| format!("unknown strategy {s:?}: random, round-robin or fastest"))?;
        }
        builder = builder.bus(RedisBus::connect(config).await?);
    }
    let node = builder.build()?;
    node.ready().await;

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

    node.on("join", |node: Node, socket: Socket, p: Value| async move {
        let (Some(ns), Some(room)) = (str_field(&p, "ns"), str_field(&p, "room")) else {
            return None;
        };
        let ok = socket
            .socket_ids()
            .iter()
            .all(|id| node.join_room(ns, room, id).is_ok());
        // Replied once the other nodes' messages to the room reach this one.
        node.room_ready(ns, room).await;
        Some(json!({ "ok": ok }))
    })?;

    node.on("room", |node: Node, p: Value| async move {
        if let (Some(ns), Some(room)) = (str_field(&p, "ns"), str_field(&p, "room")) {
            let data = p.get("data").unwrap_or(&Value::Null);
            let _ = node.to_room(ns, room).emit("room", data);
        }
    })?;

    node.on("to", |node: Node, p: Value| async move {
        if let Some(to) = str_field(&p, "to") {
            let _ = node
                .to(to)
                .emit("to", p.get("data").unwrap_or(&Value::Null));
        }
    })?;

    node.on("all", |node: Node, p: Value| async move {
        let _ = node
            .to_all()
            .emit("all", p.get("data").unwrap_or(&Value::Null));
    })?;

    node.on("echo", |p: Value| async move { p })?;

    // This node's bus counters (`loadgen traffic`).
    node.on("stats", |node: Node| async move {
        let s = node.stats();
        json!({
            "bus_received": s.bus_received,
            "bus_received_bytes": s.bus_received_bytes,
            "routed_unknown_ids": s.routed_unknown_ids,
            "routed_forwarded": s.routed_forwarded,
            "directory": node.directory_size(),
        })
    })?;

    // Whether socket id `{id}` is bound here.
    node.on("bound", |node: Node, p: Value| async move {
        let id = str_field(&p, "id")?;
        Some(json!({ "bound": node.get_socket(id).is_some() }))
    })?;

    // Room presence as this node knows it: the ids of `{ns, room}`.
    node.on("presence", |node: Node, p: Value| async move {
        let (Some(ns), Some(room)) = (str_field(&p, "ns"), str_field(&p, "room")) else {
            return None;
        };
        let ids: Vec<String> = node
            .presence_members(ns, room)
            .into_iter()
            .map(|m| m.id)
            .collect();
        Some(json!({ "ids": ids }))
    })?;

    // A cluster-wide query of the members of `{ns, room}` within
    // `timeout_ms`: how many, and whether every node answered.
    node.on("query", |node: Node, p: Value| async move {
        let (Some(ns), Some(room)) = (str_field(&p, "ns"), str_field(&p, "room")) else {
            return None;
        };
        let ms = p.get("timeout_ms").and_then(Value::as_u64).unwrap_or(2000);
        let answer = node
            .query()
            .timeout(Duration::from_millis(ms))
            .room_sockets(ns, room)
            .await;
        Some(match answer {
            Ok(a) => json!({ "count": a.value.len(), "partial": a.partial, "missing": a.missing }),
            Err(e) => json!({ "error": e.to_string() }),
        })
    })?;

    // rpc: ask node `target` to echo `data` back (cross-server, targeted).
    node.on_cross_server("rpc", |mut p: Value| async move {
        p.get_mut("data").map(Value::take).unwrap_or(Value::Null)
    })?;
    node.on("rpc", move |node: Node, p: Value| async move {
        let target = str_field(&p, "target")?;
        let call = node.emit_cross_server("rpc", &p).ok()?;
        let mut result = call
            .to([target])
            .timeout(call_timeout)
            .collect()
            .await
            .ok()?;
        result.responses.swap_remove(target)?.payload
    })?;

    // count: every node (itself included) reports its local room size.
    node.on_cross_server("count", |node: Node, p: Value| async move {
        let (ns, room) = (str_field(&p, "ns")?, str_field(&p, "room")?);
        Some(json!(node.socket_count_in_room(
            ns,
            Some(room),
            crosswire::Match::Exact
        )))
    })?;
    node.on("count", move |node: Node, p: Value| async move {
        let call = node.emit_cross_server("count", &p).ok()?;
        let result = call
            .expect(nodes)
            .timeout(call_timeout)
            .collect()
            .await
            .ok()?;
        let total: u64 = result
            .responses
            .values()
            .filter_map(|d| d.payload.as_ref().and_then(Value::as_u64))
            .sum();
        Some(json!({ "total": total }))
    })?;

    if let Some(port) = args.metrics_port {
        let ops = axum::Router::new()
            .route("/metrics", node.metrics_route())
            .route("/health", node.health_route());
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(|e| listen_error(&format!("127.0.0.1:{port} (--metrics-port)"), &e))?;
        println!(
            "bench-server {} metrics on {}",
            args.name,
            listener.local_addr()?
        );
        let n = node.clone();
        tokio::spawn(async move { n.serve(listener, ops).await });
    }
    let addr = node
        .listen(("127.0.0.1", args.port))
        .await
        .map_err(|e| listen_error(&format!("127.0.0.1:{} (--port)", args.port), &e))?;
    let tls = if args.tls_cert.is_some() {
        " (TLS)"
    } else {
        ""
    };
    println!("bench-server {}{tls} listening on {addr}", args.name);
    if let Some(api) = args.http.serve(&node).await? {
        println!("bench-server {} HTTP API on {api}", args.name);
    }

    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    node.shutdown(Duration::from_secs(2)).await;
    Ok(())
}
