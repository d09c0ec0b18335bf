//! The chat demo: a web page served by crosswire itself, using the JavaScript
//! client (`clients/js`).
//!
//! A person picks a name, joins a room, sees who is online in the room
//! (counted on every node with a cross-server call), and sends messages that
//! reach everyone in the room on every node.
//!
//! ```text
//! cargo run -p crosswire-examples --bin chat                  # one node, in-memory bus
//! cargo run -p crosswire-examples --bin chat -- --nodes 2     # two nodes in one process
//! cargo run -p crosswire-examples --bin chat -- --port 8081 --redis redis://127.0.0.1:6390
//! cargo run -p crosswire-examples --bin chat -- --tls-cert fullchain.pem --tls-key privkey.pem
//! cargo run -p crosswire-examples --bin chat -- --redis rediss://127.0.0.1:6380 --redis-ca ca.pem
//! ```
//!
//! With `--tls-cert` and `--tls-key` the node serves the page over HTTPS and
//! the WebSocket as `wss://` (the page picks the scheme it was loaded with).
//!
//! Routes: `/` the page, `/app.js`, `/style.css`, `/websocket-connector.js`
//! (the client as a plain script), `/websocket-connector.mjs` (as an ES
//! module), `/api/status` (the node and the live nodes it knows), `/health`
//! (the node's health report: 503 while it cannot reach its bus; the page
//! reads it and says so), `/ws` the WebSocket endpoint.
//!
//! A Redis that cannot be reached does not stop the node: it serves the page
//! to its own visitors, logs a warning at once and every 30 s while it
//! lasts, and keeps retrying.
//!
//! The rooms keep a history (the last 1000 messages of the last 5 minutes:
//! shared by the nodes of the process on the in-memory bus, kept in Redis
//! with `--redis`, so shared by every process on the same Redis servers) and
//! the page turns on the client's missed-message recovery: a page that lost
//! its connection gets the messages it missed when it is back (on any
//! node), shown marked as recovered, or a notice that some could not be
//! recovered (the history was lost) and the page should be reloaded.
//!
//! Client events (each answers `{ok: true, ...}` or `{ok: false, error}`
//! through the callback): `join {name, room}`, `say {text}`, `online`,
//! `leave`. Pushed events: `welcome`, `chat-message`, `system`, `presence`.

use axum::extract::State;
use axum::http::header;
use axum::routing::get;
use axum::{Json, Router};
use clap::Parser;
use crosswire::bus::MemoryHub;
use crosswire::history::HistoryConfig;
use crosswire::{Node, Socket};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio_util::sync::CancellationToken;

/// Room namespace of the demo.
const NS: &str = "chat";
/// Longest name, in characters.
const MAX_NAME: usize = 32;
/// Longest room name, in characters.
const MAX_ROOM: usize = 32;
/// Longest message, in characters.
const MAX_TEXT: usize = 2000;
/// Most names listed in a presence update.
const MAX_LISTED: usize = 100;

const INDEX_HTML: &str = include_str!("../../chat/index.html");
const APP_JS: &str = include_str!("../../chat/app.js");
const STYLE_CSS: &str = include_str!("../../chat/style.css");
const CONNECTOR_JS: &str = include_str!("../../../clients/js/dist/websocket-connector.js");
const CONNECTOR_MJS: &str = include_str!("../../../clients/js/src/websocket-connector.mjs");

/// Content-Security-Policy of every page resource: scripts and styles from
/// this origin only, no inline code (a second line of defence behind the
/// page's escaping).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
                   img-src 'self'; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'";

#[derive(Parser, Debug)]
#[command(about = "crosswire chat demo: a web page and a WebSocket node")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Port to listen on (0: any free port). With --nodes N, node i listens
    /// on port + i.
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// Node name, unique in the cluster (default: chat-PORT).
    #[arg(long)]
    name: Option<String>,
    /// Redis node URL (`redis://`, or `rediss://` for TLS); repeat it (or
    /// separate with commas) for several independent Redis nodes. Without it
    /// the nodes use an in-memory bus.
    #[arg(long, value_delimiter = ',')]
    redis: Vec<String>,
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
    /// Serve HTTPS and `wss://` with this PEM certificate chain (the
    /// server's certificate first); needs --tls-key.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Nodes to run in this process on the in-memory bus (not with --redis).
    #[arg(long, default_value_t = 1)]
    nodes: u16,
    /// Accept WebSocket upgrades from pages of any site. By default only
    /// pages served by this node (and `--allowed-origin`s) may connect from
    /// a browser, so another site cannot act as its visitors.
    #[arg(long)]
    any_origin: bool,
    #[command(flatten)]
    limits: crosswire::cli::LimitArgs,
    /// The HTTP API (served by the first node of the process).
    #[command(flatten)]
    http: crosswire::cli::HttpApiArgs,
}

/// What the node knows about a connected person (kept on the socket).
#[derive(Clone, Debug, Default)]
struct Member {
    /// Socket id, unique in the cluster: `<node>:<connection number>`.
    id: String,
    name: Option<String>,
    room: Option<String>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A successful reply: `value` with `"ok": true`.
fn ok(mut value: Value) -> Value {
    if let Some(map) = value.as_object_mut() {
        map.insert("ok".into(), Value::Bool(true));
    }
    value
}

/// A refusal the page shows: `{"ok": false, "error": ...}`.
fn fail(error: &str) -> Value {
    json!({ "ok": false, "error": error })
}

/// A trimmed text field of at most `max` characters, without control characters.
fn text_field(payload: &Value, key: &str, what: &str, max: usize) -> Result<String, String> {
    let raw = match payload.get(key) {
        None | Some(Value::Null) => return Err(format!("{what} is required")),
        Some(Value::String(s)) => s.trim(),
        Some(_) => return Err(format!("{what} must be text")),
    };
    if raw.is_empty() {
        return Err(format!("{what} is required"));
    }
    let len = raw.chars().count();
    if len > max {
        return Err(format!(
            "{what} is too long: {len} characters, at most {max}"
        ));
    }
    if raw
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(format!("{what} contains control characters"));
    }
    Ok(raw.to_owned())
}

/// People of `room` on every node: `(count, names)`, from the room's
/// presence (kept on every node; a node that goes away takes its people
/// with it).
fn presence(node: &Node, room: &str) -> (u64, Vec<String>) {
    let members = node.presence_members(NS, room);
    let mut names: Vec<String> = members
        .iter()
        .filter_map(|m| m.info.get("name")?.as_str().map(str::to_owned))
        .collect();
    names.sort_by_key(|n| n.to_lowercase());
    names.truncate(MAX_LISTED);
    (members.len() as u64, names)
}

fn presence_value(node: &Node, room: &str, (count, names): (u64, Vec<String>)) -> Value {
    json!({ "room": room, "count": count, "names": names, "nodes": node.live_nodes().len() })
}

fn system_message(node: &Node, room: &str, text: String) {
    let msg = json!({ "room": room, "text": text, "node": node.server_name(), "ts": now_ms() });
    let _ = node.to_room(NS, room).emit("system", &msg);
}

/// Takes `member` out of its room, tells the room, and updates the presence.
fn leave_room(node: &Node, member: &Member) {
    let (Some(room), Some(name)) = (&member.room, &member.name) else {
        return;
    };
    let _ = node.leave_room(NS, room, &member.id);
    system_message(node, room, format!("{name} left"));
}

fn register(node: &Node) -> crosswire::Result<()> {
    node.on_connection(|socket, _handshake| async move {
        let Some(node) = socket.node() else { return };
        let id = format!("{}:{}", node.server_name(), socket.id());
        if node.set_user_socket(&id, &socket).is_err() {
            socket.close(4011, "no socket id");
            return;
        }
        socket.insert_data(Member {
            id: id.clone(),
            ..Member::default()
        });
        let _ = socket.emit(
            "welcome",
            &json!({ "id": id, "node": node.server_name(), "nodes": node.live_nodes().len() }),
        );
    });

    node.on_close(|socket, _info| async move {
        if let (Some(node), Some(member)) = (socket.node(), socket.data::<Member>()) {
            leave_room(&node, &member);
        }
    });

    node.on("join", |node: Node, socket: Socket, payload: Value| async move {
        join(&node, &socket, &payload).await
    })?;
    node.on(
        "say",
        |node: Node, socket: Socket, payload: Value| async move { say(&node, &socket, &payload) },
    )?;
    node.on("online", |node: Node, socket: Socket| async move {
        let Some(room) = socket.data::<Member>().and_then(|m| m.room) else {
            return fail("join a room first");
        };
        let p = presence(&node, &room);
        ok(presence_value(&node, &room, p))
    })?;
    node.on("leave", |node: Node, socket: Socket| async move {
        let Some(mut member) = socket.data::<Member>() else {
            return fail("unknown connection");
        };
        leave_room(&node, &member);
        member.room = None;
        socket.insert_data(member);
        ok(json!({}))
    })?;
    Ok(())
}

async fn join(node: &Node, socket: &Socket, payload: &Value) -> Value {
    let Some(mut member) = socket.data::<Member>() else {
        return fail("unknown connection");
    };
    let name = match text_field(payload, "name", "name", MAX_NAME) {
        Ok(name) => name,
        Err(e) => return fail(&e),
    };
    let room = match text_field(payload, "room", "room", MAX_ROOM) {
        Ok(room) => room,
        Err(e) => return fail(&e),
    };
    if member.room.as_deref() != Some(room.as_str()) {
        leave_room(node, &member);
    }
    // Shown in the room's presence on every node.
    let _ = socket.set_info(&json!({ "name": name }));
    if let Err(e) = node.join_room(NS, &room, &member.id) {
        return fail(&format!("cannot join: {e}"));
    }
    member.name = Some(name.clone());
    member.room = Some(room.clone());
    socket.insert_data(member.clone());
    system_message(
        node,
        &room,
        format!("{name} joined (on node {})", node.server_name()),
    );
    let value = presence_value(node, &room, presence(node, &room));
    ok(json!({
        "id": member.id,
        "name": name,
        "room": room,
        "node": node.server_name(),
        "online": value,
    }))
}

fn say(node: &Node, socket: &Socket, payload: &Value) -> Value {
    let member = socket.data::<Member>().unwrap_or_default();
    let (Some(room), Some(name)) = (member.room, member.name) else {
        return fail("join a room first");
    };
    let text = match text_field(payload, "text", "message", MAX_TEXT) {
        Ok(text) => text,
        Err(e) => return fail(&e),
    };
    let msg = json!({
        "room": room,
        "from": member.id,
        "name": name,
        "text": text,
        "node": node.server_name(),
        "ts": now_ms(),
    });
    match node.to_room(NS, &room).emit("chat-message", &msg) {
        Ok(()) => ok(json!({})),
        Err(e) => fail(&format!("not sent: {e}")),
    }
}

fn page(node: &Node) -> Router {
    let asset = |content_type: &'static str, body: &'static str| {
        get(move || async move {
            (
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CONTENT_SECURITY_POLICY, CSP),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                    (header::CACHE_CONTROL, "no-cache"),
                ],
                body,
            )
        })
    };
    Router::new()
        .route("/", asset("text/html; charset=utf-8", INDEX_HTML))
        .route("/index.html", asset("text/html; charset=utf-8", INDEX_HTML))
        .route(
            "/favicon.ico",
            get(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
        .route("/app.js", asset("text/javascript; charset=utf-8", APP_JS))
        .route("/style.css", asset("text/css; charset=utf-8", STYLE_CSS))
        .route(
            "/websocket-connector.js",
            asset("text/javascript; charset=utf-8", CONNECTOR_JS),
        )
        .route(
            "/websocket-connector.mjs",
            asset("text/javascript; charset=utf-8", CONNECTOR_MJS),
        )
        .route(
            "/api/status",
            get(|State(node): State<Node>| async move {
                Json(json!({
                    "node": node.server_name(),
                    "nodes": node.live_nodes(),
                    "connections": node.connection_count(),
                }))
            }),
        )
        .route("/ws", node.ws_route())
        .with_state(node.clone())
        .route("/health", node.health_route())
}

/// Binds, builds and serves one node; returns it once it accepts connections.
async fn start_node(
    args: &Args,
    index: u16,
    bus: Option<Box<dyn FnOnce(crosswire::NodeBuilder) -> crosswire::NodeBuilder>>,
    tls: Option<&crosswire::config::TlsConfig>,
    stop: CancellationToken,
) -> Result<Node, Box<dyn std::error::Error>> {
    let port = if args.port == 0 {
        0
    } else {
        args.port.checked_add(index).ok_or("port out of range")?
    };
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), port))
        .await
        .map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::AddrInUse => {
                    "; another program uses that port: pick another with --port (0: any free port)"
                }
                std::io::ErrorKind::PermissionDenied => "; ports below 1024 need privileges",
                _ => "",
            };
            format!("cannot listen on {}:{port}: {e}{hint}", args.host)
        })?;
    let local = listener.local_addr()?;
    let name = match (&args.name, index) {
        (Some(name), 0) => name.clone(),
        (Some(name), i) => format!("{name}-{i}"),
        (None, _) => format!("chat-{}", local.port()),
    };
    let mut builder = args
        .limits
        .apply(Node::builder().server_name(name))
        .same_origin(!args.any_origin);
    if let Some(with_bus) = bus {
        builder = with_bus(builder);
    }
    if let Some(tls) = tls {
        builder = builder.tls(tls.clone());
    }
    let node = builder.build()?;
    register(&node)?;
    node.ready().await;
    let app = page(&node);
    let n = node.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = n.serve(listener, app) => {}
            () = stop.cancelled() => {}
        }
    });
    let host = match local {
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
        SocketAddr::V4(a) => a.ip().to_string(),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!(
        "chat node {} listening on {scheme}://{host}:{}/",
        node.server_name(),
        local.port()
    );
    if index == 0 {
        if let Some(api) = args.http.serve(&node).await? {
            let admin = if args.http.admin {
                " (admin page: /admin)"
            } else {
                ""
            };
            println!(
                "HTTP API of {} on http://{api}/api/v1/{admin}",
                node.server_name()
            );
        }
    }
    Ok(node)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Plainly, not as `Debug` (which would print a string in quotes).
            eprintln!("chat: {e}");
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

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    if args.nodes == 0 {
        return Err("--nodes must be at least 1".into());
    }
    if !args.redis.is_empty() && args.nodes != 1 {
        return Err(
            "--nodes is for the in-memory bus: start one process per node with --redis".into(),
        );
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(crosswire::config::TlsConfig::from_pem_files(cert, key)?),
        _ => None,
    };
    let stop = CancellationToken::new();
    let mut nodes = Vec::new();
    if args.redis.is_empty() {
        let hub = MemoryHub::new();
        for i in 0..args.nodes {
            let bus = hub.bus();
            let with_bus = Box::new(move |b: crosswire::NodeBuilder| {
                b.bus(bus)
                    .history(NS, HistoryConfig::default())
                    .presence(NS)
            });
            let node = start_node(&args, i, Some(with_bus), tls.as_ref(), stop.clone()).await?;
            nodes.push(node);
        }
        println!(
            "bus: in-memory ({} node(s) in this process), room history on",
            args.nodes
        );
    } else {
        let mut config =
            crosswire_redis::RedisBusConfig::new(args.redis.iter().map(String::as_str));
        config.tls = redis_tls(&args)?;
        let bus = crosswire_redis::RedisBus::connect(config).await?;
        let unreachable: Vec<String> = bus
            .nodes()
            .into_iter()
            .filter(|n| !n.publish_target)
            .map(|n| format!("{} ({})", n.url, n.error.as_deref().unwrap_or("not ready")))
            .collect();
        let with_bus = Box::new(move |b: crosswire::NodeBuilder| {
            b.bus(bus)
                .history(NS, HistoryConfig::default())
                .presence(NS)
        });
        let node = start_node(&args, 0, Some(with_bus), tls.as_ref(), stop.clone()).await?;
        nodes.push(node);
        println!(
            "bus: Redis {}, room history in Redis",
            args.redis.join(", ")
        );
        if !unreachable.is_empty() {
            eprintln!(
                "chat: cannot reach Redis at {}: the page works, but its messages reach only \
                 this node until Redis is up (retrying; /health tells the state)",
                unreachable.join(", ")
            );
        }
    }

    shutdown_signal().await;
    for node in &nodes {
        node.shutdown(Duration::from_secs(2)).await;
    }
    stop.cancel();
    Ok(())
}
