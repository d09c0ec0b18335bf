//! `crosswire`: operate a crosswire cluster from a shell, over the HTTP API
//! of one of its nodes (see `docs/http-api.md`).
//!
//! ```text
//! export CROSSWIRE_API=127.0.0.1:8090 CROSSWIRE_TOKEN=...
//! crosswire health
//! crosswire publish maintenance '{"at":"02:00"}'               # every socket
//! crosswire publish say '{"text":"hi"}' --room chat/lobby --exclude u7
//! crosswire publish notice '"your export is ready"' --to u1 --to u2
//! crosswire call ping --expect all --call-timeout-ms 2000
//! crosswire rooms --namespace chat
//! crosswire watch
//! ```
//!
//! Exit codes:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done (`health`: status `ok`; `call`: every expected reply came) |
//! | 1 | an error answer of the API (`error <code>: <message>` on stderr), the node unreachable or silent; `health`: status `unavailable` |
//! | 2 | `health`: status `degraded` (serving, but part of the bus is down or the cluster routes inconsistently) |
//! | 3 | `call`: some expected replies did not come in time (those that came are printed) |
//! | 64 | a usage error: unknown flag, missing token, a payload that is not JSON (nothing was sent) |

use clap::{Args, Parser, Subcommand};
use crosswire_cli::{ApiClient, ApiResponse, ClientError};
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Exit code: done.
const EXIT_OK: u8 = 0;
/// Exit code: an error answer, an unreachable node; `health`: unavailable.
const EXIT_ERROR: u8 = 1;
/// Exit code of `health` when the node is degraded.
const EXIT_DEGRADED: u8 = 2;
/// Exit code of `call` when some expected replies did not come.
const EXIT_INCOMPLETE: u8 = 3;
/// Exit code of a usage error (sysexits' `EX_USAGE`).
const EXIT_USAGE: u8 = 64;

/// The API root.
const API: &str = "/api/v1";

#[derive(Parser, Debug)]
#[command(
    name = "crosswire",
    version,
    about = "Operate a crosswire cluster over a node's HTTP API",
    after_help = "Exit codes: 0 done (health: ok; call: completed), 1 error answer or \
                  node unreachable (health: unavailable), 2 health: degraded, \
                  3 call: not completed, 64 usage error (nothing was sent)."
)]
struct Cli {
    /// The node's HTTP API, HOST:PORT (as given to its --http-api).
    #[arg(
        long,
        env = "CROSSWIRE_API",
        default_value = "127.0.0.1:8090",
        global = true,
        value_name = "HOST:PORT"
    )]
    api: String,
    /// Bearer token of the API (required; prefer the environment variable,
    /// which other users cannot read in the process list).
    #[arg(long, env = "CROSSWIRE_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Print the API's JSON answer as is (one line) instead of text.
    #[arg(long, global = true)]
    json: bool,
    /// Longest wait for one answer of the API, in milliseconds (a `call`
    /// waits at least its --call-timeout-ms plus 2 s).
    #[arg(
        long,
        default_value_t = 10_000,
        global = true,
        value_name = "MS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    timeout_ms: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Send an event to every socket, to socket ids, or to a room.
    ///
    /// Fire-and-forget, like a send from the WebSocket side: ids connected
    /// nowhere are dropped without an error.
    Publish(Publish),
    /// Emit a cross-server event and print the nodes' replies (exit 3 when
    /// some expected replies did not come).
    Call(Call),
    /// List the live nodes of the cluster.
    Nodes,
    /// Every live node's own report: status, connections, the nodes it
    /// sees, its bus (GET /api/v1/cluster); exit 2 when a node is not ok or
    /// did not answer.
    Cluster,
    /// The node's health and its bus nodes (exit 0 ok, 2 degraded, 1
    /// unavailable).
    Health,
    /// Room sizes over the cluster, largest first.
    Rooms {
        /// Only this namespace (default: every namespace the node has rooms
        /// in).
        #[arg(long, value_name = "NS")]
        namespace: Option<String>,
        #[command(flatten)]
        query: QueryTimeout,
    },
    /// The sockets of a room with their nodes, and its presence when the
    /// namespace keeps one.
    Room {
        /// The namespace.
        #[arg(value_name = "NS")]
        namespace: String,
        /// The room.
        room: String,
        #[command(flatten)]
        query: QueryTimeout,
    },
    /// The nodes holding a connection of a socket id.
    Locate {
        /// The socket id.
        id: String,
        #[command(flatten)]
        query: QueryTimeout,
    },
    /// The node's key figures and its non-zero counters.
    Stats,
    /// A line per interval: time, status, live nodes, connections, frames
    /// in/s, bus messages in/s, errors/s. Runs until Ctrl-C, also while the
    /// node is unreachable.
    Watch {
        /// Interval between lines, in milliseconds.
        #[arg(
            long,
            default_value_t = 1000,
            value_name = "MS",
            value_parser = clap::value_parser!(u64).range(100..)
        )]
        every_ms: u64,
    },
}

#[derive(Args, Debug)]
struct Publish {
    /// The event name.
    event: String,
    /// The payload as JSON (default null): '{"text":"hi"}', '"a string"',
    /// 42.
    #[arg(value_name = "PAYLOAD_JSON")]
    payload: Option<String>,
    /// Send to this socket id (repeatable) instead of every socket.
    #[arg(long = "to", value_name = "ID", conflicts_with_all = ["room", "local_only"])]
    to: Vec<String>,
    /// Send to the members of this room, NAMESPACE/ROOM (the first `/`
    /// splits).
    #[arg(long, value_name = "NS/ROOM")]
    room: Option<String>,
    /// With --room: a socket id of the room that does not get the event
    /// (repeatable).
    #[arg(long, value_name = "ID", requires = "room")]
    exclude: Vec<String>,
    /// Only the sockets of the node serving the request.
    #[arg(long)]
    local_only: bool,
}

#[derive(Args, Debug)]
struct Call {
    /// The cross-server event the nodes' handlers listen to.
    event: String,
    /// The payload as JSON (default `{}`: cross-server events refuse a
    /// null payload).
    #[arg(value_name = "PAYLOAD_JSON")]
    payload: Option<String>,
    /// Only this live node (repeatable; one reply expected from each).
    #[arg(long = "server", value_name = "NAME")]
    servers: Vec<String>,
    /// Without --server: not the node serving the request.
    #[arg(long, conflicts_with = "servers")]
    except_self: bool,
    /// Without --server: replies to wait for, a count or `all` live nodes
    /// (the API's default: 1).
    #[arg(long, value_name = "N|all", conflicts_with = "servers", value_parser = parse_expect)]
    expect: Option<Value>,
    /// How long the nodes have to reply, in milliseconds (the API's
    /// default: 5000; at most its max_call_timeout).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    call_timeout_ms: Option<u64>,
}

#[derive(Args, Debug)]
struct QueryTimeout {
    /// How long the node waits for the other nodes' answers, in
    /// milliseconds (the API's default: 2000).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(1..))]
    query_timeout_ms: Option<u64>,
}

/// `--expect`: a positive count or `all`.
fn parse_expect(s: &str) -> Result<Value, String> {
    if s == "all" {
        return Ok(Value::from("all"));
    }
    match s.parse::<u64>() {
        Ok(n) if n > 0 => Ok(Value::from(n)),
        _ => Err(format!("{s:?}: expected a count of at least 1, or `all`")),
    }
}

/// Why a command did not end normally.
#[derive(Debug)]
enum Failure {
    /// A usage error found before any request.
    Usage(String),
    /// The node could not be reached, or did not answer.
    Client(ClientError),
    /// An error answer of the API.
    Api(ApiResponse),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        Failure::Client(e)
    }
}

/// What a command ends with: its exit code, or a failure.
type Outcome = Result<u8, Failure>;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { EXIT_OK });
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let api = cli.api.clone();
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            EXIT_USAGE
        }
        Err(Failure::Client(e)) => {
            eprintln!("error: {}", describe_client_error(&e, &api));
            EXIT_ERROR
        }
        Err(Failure::Api(answer)) => {
            eprintln!("{}", describe_error_answer(&answer));
            EXIT_ERROR
        }
    };
    ExitCode::from(code)
}

/// A client error, naming the address when the error does not.
fn describe_client_error(e: &ClientError, api: &str) -> String {
    match e {
        ClientError::Connect { .. } => e.to_string(),
        ClientError::Timeout(t) => format!("no answer from {api} within {t:?}"),
        other => format!("{other} (talking to {api})"),
    }
}

/// `error <code>: <message>` from the API's error body, or the status and
/// what came when the body is not one.
fn describe_error_answer(answer: &ApiResponse) -> String {
    let message = answer
        .body
        .get("error")
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str);
    match (answer.error_code(), message) {
        (Some(code), Some(message)) => format!("error {code}: {message}"),
        (Some(code), None) => format!("error {code}"),
        _ => format!(
            "error: HTTP {} with an unexpected answer: {}",
            answer.status,
            compact(&answer.body)
        ),
    }
}

/// The address as the client wants it: `HOST:PORT`, also accepted as
/// `http://HOST:PORT/...` (as the node prints it).
fn normalize_api(api: &str) -> Result<String, Failure> {
    let trimmed = api.trim();
    if trimmed.starts_with("https://") {
        return Err(Failure::Usage(format!(
            "--api {trimmed}: this client speaks plain HTTP; give the node's HOST:PORT on a private network (or a local end of a tunnel)"
        )));
    }
    let rest = trimmed.strip_prefix("http://").unwrap_or(trimmed);
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() {
        return Err(Failure::Usage(format!(
            "--api {api:?}: expected HOST:PORT, e.g. 127.0.0.1:8090"
        )));
    }
    Ok(host.to_owned())
}

async fn run(cli: Cli) -> Outcome {
    let api = normalize_api(&cli.api)?;
    let token =
        match cli.token.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => t.to_owned(),
            _ => return Err(Failure::Usage(
                "a token is required: --token TOKEN or the CROSSWIRE_TOKEN environment variable"
                    .into(),
            )),
        };
    let timeout = Duration::from_millis(cli.timeout_ms);
    let out = Out { json: cli.json };
    let client = |timeout: Duration| ApiClient::new(api.clone(), token.clone()).timeout(timeout);
    match cli.command {
        Command::Publish(p) => publish(&mut client(timeout), out, p).await,
        Command::Call(c) => {
            // The node answers a call when its timeout passed: wait longer.
            let call_wait =
                Duration::from_millis(c.call_timeout_ms.unwrap_or(5_000)) + Duration::from_secs(2);
            call(&mut client(timeout.max(call_wait)), out, c).await
        }
        Command::Nodes => nodes(&mut client(timeout), out).await,
        Command::Cluster => cluster(&mut client(timeout), out).await,
        Command::Health => health(&mut client(timeout), out).await,
        Command::Rooms { namespace, query } => {
            rooms(&mut client(timeout), out, namespace, query).await
        }
        Command::Room {
            namespace,
            room: name,
            query,
        } => room(&mut client(timeout), out, &namespace, &name, query).await,
        Command::Locate { id, query } => locate(&mut client(timeout), out, &id, query).await,
        Command::Stats => stats(&mut client(timeout), out).await,
        Command::Watch { every_ms } => {
            let every = Duration::from_millis(every_ms);
            // A silent node must not hold the lines back for long.
            let wait = timeout.min(every.max(Duration::from_secs(1)));
            watch(&mut client(wait), &api, out, every).await
        }
    }
}

/// How answers are printed.
#[derive(Clone, Copy, Debug)]
struct Out {
    json: bool,
}

impl Out {
    /// Prints the raw answer with `--json`; whether it did.
    fn raw(self, body: &Value) -> bool {
        if self.json {
            println!("{}", compact(body));
        }
        self.json
    }
}

/// The body of a 2xx answer (printed as is with `--json`), or the failure.
fn success(out: Out, answer: ApiResponse) -> Result<(Value, bool), Failure> {
    let printed = out.raw(&answer.body);
    if (200..300).contains(&answer.status) {
        Ok((answer.body, printed))
    } else {
        Err(Failure::Api(answer))
    }
}

/// A payload argument: JSON, or a usage error saying how to write one.
fn parse_payload(payload: Option<&str>) -> Result<Value, Failure> {
    let Some(text) = payload else {
        return Ok(Value::Null);
    };
    serde_json::from_str(text).map_err(|e| {
        Failure::Usage(format!(
            "the payload must be JSON ({e}): got {text:?}; quote a string as JSON, e.g. '\"hello\"', or give an object, e.g. '{{\"text\":\"hello\"}}'. Nothing was sent."
        ))
    })
}

/// `NS/ROOM`, split at the first `/`.
fn split_room(target: &str) -> Result<(&str, &str), Failure> {
    match target.split_once('/') {
        Some((ns, room)) if !ns.is_empty() && !room.is_empty() => Ok((ns, room)),
        _ => Err(Failure::Usage(format!(
            "--room {target:?}: expected NAMESPACE/ROOM, e.g. chat/lobby"
        ))),
    }
}

async fn publish(api: &mut ApiClient, out: Out, p: Publish) -> Outcome {
    let payload = parse_payload(p.payload.as_deref())?;
    if p.event.is_empty() {
        return Err(Failure::Usage("the event name must not be empty".into()));
    }
    let (path, body, target) = if let Some(target) = &p.room {
        let (ns, room) = split_room(target)?;
        let mut body = json!({"namespace": ns, "room": room, "event": p.event, "payload": payload});
        if !p.exclude.is_empty() {
            body["exclude"] = json!(p.exclude);
        }
        if p.local_only {
            body["local_only"] = Value::Bool(true);
        }
        (
            "rooms/send",
            body,
            format!("room {ns}/{room}{}", excluding(&p.exclude)),
        )
    } else if !p.to.is_empty() {
        let body = json!({"ids": p.to, "event": p.event, "payload": payload});
        let target = if p.to.len() == 1 {
            format!("id {}", p.to[0])
        } else {
            format!("{} ids", p.to.len())
        };
        ("send", body, target)
    } else {
        let mut body = json!({"event": p.event, "payload": payload});
        if p.local_only {
            body["local_only"] = Value::Bool(true);
        }
        ("broadcast", body, "every socket".to_owned())
    };
    let answer = api.post(&format!("{API}/{path}"), &body).await?;
    let (_, printed) = success(out, answer)?;
    if !printed {
        let scope = if p.local_only {
            " of the serving node"
        } else {
            ""
        };
        println!("sent {} to {target}{scope}", p.event);
    }
    Ok(EXIT_OK)
}

fn excluding(ids: &[String]) -> String {
    if ids.is_empty() {
        String::new()
    } else {
        format!(" except {}", ids.join(", "))
    }
}

async fn call(api: &mut ApiClient, out: Out, c: Call) -> Outcome {
    let payload = match c.payload.as_deref() {
        None => Value::Object(Map::new()),
        given => parse_payload(given)?,
    };
    if c.event.is_empty() {
        return Err(Failure::Usage("the event name must not be empty".into()));
    }
    let mut body = Map::new();
    body.insert("event".into(), Value::from(c.event.as_str()));
    body.insert("payload".into(), payload);
    if !c.servers.is_empty() {
        body.insert("servers".into(), json!(c.servers));
    }
    if c.except_self {
        body.insert("except_self".into(), Value::Bool(true));
    }
    if let Some(expect) = c.expect {
        body.insert("expect".into(), expect);
    }
    if let Some(ms) = c.call_timeout_ms {
        body.insert("timeout_ms".into(), Value::from(ms));
    }
    let answer = api
        .post(&format!("{API}/call"), &Value::Object(body))
        .await?;
    let (body, printed) = success(out, answer)?;
    let completed = body.get("completed").and_then(Value::as_bool) == Some(true);
    let replies = body
        .get("replies")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if !printed {
        for reply in replies {
            let server = reply.get("server").and_then(Value::as_str).unwrap_or("?");
            let payload = reply.get("payload").unwrap_or(&Value::Null);
            println!("{server}: {}", compact(payload));
        }
        let missing = body.get("missing").and_then(Value::as_u64).unwrap_or(0);
        let n = replies.len();
        let replies_word = plural(n, "reply", "replies");
        if completed {
            println!("completed: {n} {replies_word}");
        } else {
            println!("not completed: {n} {replies_word}, {missing} missing");
        }
    }
    Ok(if completed { EXIT_OK } else { EXIT_INCOMPLETE })
}

async fn nodes(api: &mut ApiClient, out: Out) -> Outcome {
    let (body, printed) = success(out, api.get(&format!("{API}/nodes")).await?)?;
    if !printed {
        let serving = str_field(&body, "node");
        for node in strings(&body, "nodes") {
            if node == serving {
                println!("{node} (serving this API)");
            } else {
                println!("{node}");
            }
        }
    }
    Ok(EXIT_OK)
}

async fn cluster(api: &mut ApiClient, out: Out) -> Outcome {
    let (body, printed) = success(out, api.get(&format!("{API}/cluster")).await?)?;
    let empty = serde_json::Map::new();
    let nodes = body["nodes"].as_object().unwrap_or(&empty);
    let all_ok = nodes.values().all(|h| h["status"] == "ok");
    if !printed {
        let rows: Vec<Vec<String>> = nodes
            .iter()
            .map(|(name, h)| {
                let bus = match h.get("bus") {
                    Some(b) if b.is_object() => if b["healthy"] == true {
                        "healthy"
                    } else {
                        "cannot publish"
                    }
                    .to_owned(),
                    _ => "none".to_owned(),
                };
                vec![
                    name.clone(),
                    str_field(h, "status").to_owned(),
                    number(h, "connections"),
                    strings(h, "live_nodes").len().to_string(),
                    bus,
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &["NODE", "STATUS", "CONNECTIONS", "LIVE NODES SEEN", "BUS"],
                &rows
            )
        );
        warn_partial(&body);
    }
    let partial = body["partial"] == true;
    Ok(if all_ok && !partial {
        EXIT_OK
    } else {
        EXIT_DEGRADED
    })
}

/// The exit code of a health status.
fn health_code(status: &str) -> u8 {
    match status {
        "ok" => EXIT_OK,
        "degraded" => EXIT_DEGRADED,
        _ => EXIT_ERROR,
    }
}

async fn health(api: &mut ApiClient, out: Out) -> Outcome {
    let answer = api.get(&format!("{API}/health")).await?;
    // 503 comes with the health report (status `unavailable`).
    if answer.status == 503 && answer.body.get("status").is_some() {
        let printed = out.raw(&answer.body);
        if !printed {
            print_health(&answer.body);
        }
        return Ok(health_code(str_field(&answer.body, "status")));
    }
    let (body, printed) = success(out, answer)?;
    if !printed {
        print_health(&body);
    }
    Ok(health_code(str_field(&body, "status")))
}

fn print_health(h: &Value) {
    let live = strings(h, "live_nodes");
    let connections = h.get("connections").and_then(Value::as_u64).unwrap_or(0);
    println!(
        "{}: node {}, {connections} {}, {} live {}: {}",
        str_field(h, "status"),
        str_field(h, "node"),
        plural(connections as usize, "connection", "connections"),
        live.len(),
        plural(live.len(), "node", "nodes"),
        live.join(", ")
    );
    if let Some(conflict) = h.get("routing_conflict").and_then(Value::as_str) {
        println!("routing conflict: {conflict}");
    }
    match h.get("bus") {
        Some(bus) if bus.is_object() => {
            let n = |k: &str| bus.get(k).and_then(Value::as_u64).unwrap_or(0);
            let healthy = bus.get("healthy").and_then(Value::as_bool) == Some(true);
            let mut line = format!(
                "bus: {}, publish failures {}, dropped {}, reconnects {}",
                if healthy {
                    "can publish"
                } else {
                    "CANNOT PUBLISH"
                },
                n("publish_failures"),
                n("dropped"),
                n("reconnects"),
            );
            if n("in_doubt") > 0 {
                let _ = write!(line, ", in doubt {}", n("in_doubt"));
            }
            println!("{line}");
            let rows: Vec<Vec<String>> = bus
                .get("nodes")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(|node| {
                    let healthy = node.get("healthy").and_then(Value::as_bool) == Some(true);
                    vec![
                        str_field(node, "name").to_owned(),
                        if healthy { "yes" } else { "NO" }.to_owned(),
                        node.get("latency_ms")
                            .and_then(Value::as_f64)
                            .map_or("-".to_owned(), |ms| format!("{ms:.1} ms")),
                        number(node, "published"),
                        number(node, "failovers"),
                        node.get("error")
                            .and_then(Value::as_str)
                            .unwrap_or("-")
                            .to_owned(),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                print!(
                    "{}",
                    table(
                        &[
                            "BUS NODE",
                            "HEALTHY",
                            "LATENCY",
                            "PUBLISHED",
                            "FAILOVERS",
                            "ERROR"
                        ],
                        &rows
                    )
                );
            }
        }
        _ => println!("bus: none (a node on its own)"),
    }
}

/// `?timeout_ms=` when asked.
fn query_string(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = String::new();
    for (key, value) in pairs {
        if let Some(value) = value {
            q.push(if q.is_empty() { '?' } else { '&' });
            let _ = write!(q, "{key}={}", encode(value));
        }
    }
    q
}

/// Says on stderr which nodes did not answer a partial query.
fn warn_partial(body: &Value) {
    if body.get("partial").and_then(Value::as_bool) == Some(true) {
        let missing = strings(body, "missing");
        eprintln!(
            "warning: partial answer, no answer in time from {}",
            if missing.is_empty() {
                "some node".to_owned()
            } else {
                missing.join(", ")
            }
        );
    }
}

async fn rooms(
    api: &mut ApiClient,
    out: Out,
    namespace: Option<String>,
    query: QueryTimeout,
) -> Outcome {
    let q = query_string(&[
        ("namespace", namespace),
        (
            "timeout_ms",
            query.query_timeout_ms.map(|ms| ms.to_string()),
        ),
    ]);
    let (body, printed) = success(out, api.get(&format!("{API}/rooms{q}")).await?)?;
    if !printed {
        let mut rows: Vec<(String, String, u64)> = Vec::new();
        if let Some(namespaces) = body.get("namespaces").and_then(Value::as_object) {
            for (ns, rooms) in namespaces {
                if let Some(rooms) = rooms.as_object() {
                    for (room, size) in rooms {
                        rows.push((ns.clone(), room.clone(), size.as_u64().unwrap_or(0)));
                    }
                }
            }
        }
        rows.sort_by(|a, b| b.2.cmp(&a.2).then_with(|| (&a.0, &a.1).cmp(&(&b.0, &b.1))));
        if rows.is_empty() {
            println!("no rooms");
        } else {
            let rows: Vec<Vec<String>> = rows
                .into_iter()
                .map(|(ns, room, size)| vec![ns, room, size.to_string()])
                .collect();
            print!("{}", table(&["NAMESPACE", "ROOM", "SOCKETS"], &rows));
        }
    }
    warn_partial(&body);
    Ok(EXIT_OK)
}

/// Rows of sockets or presence members: id, node, info.
fn member_rows(list: &[Value]) -> Vec<Vec<String>> {
    list.iter()
        .map(|m| {
            let info = match m.get("info") {
                None | Some(Value::Null) => "-".to_owned(),
                Some(info) => compact(info),
            };
            vec![
                str_field(m, "id").to_owned(),
                str_field(m, "node").to_owned(),
                info,
            ]
        })
        .collect()
}

async fn room(
    api: &mut ApiClient,
    out: Out,
    namespace: &str,
    room: &str,
    query: QueryTimeout,
) -> Outcome {
    let q = query_string(&[(
        "timeout_ms",
        query.query_timeout_ms.map(|ms| ms.to_string()),
    )]);
    let path = format!("{API}/rooms/{}/{}{q}", encode(namespace), encode(room));
    let (body, printed) = success(out, api.get(&path).await?)?;
    if !printed {
        let sockets = body
            .get("sockets")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if sockets.is_empty() {
            println!("no sockets in {namespace}/{room}");
        } else {
            print!(
                "{}",
                table(&["SOCKET", "NODE", "INFO"], &member_rows(sockets))
            );
            println!(
                "{} {} in {namespace}/{room}",
                sockets.len(),
                plural(sockets.len(), "socket", "sockets")
            );
        }
        if let Some(presence) = body.get("presence").and_then(Value::as_array) {
            println!(
                "presence: {} {}",
                presence.len(),
                plural(presence.len(), "member", "members")
            );
            if !presence.is_empty() {
                print!(
                    "{}",
                    table(&["MEMBER", "NODE", "INFO"], &member_rows(presence))
                );
            }
        }
    }
    warn_partial(&body);
    Ok(EXIT_OK)
}

async fn locate(api: &mut ApiClient, out: Out, id: &str, query: QueryTimeout) -> Outcome {
    let q = query_string(&[(
        "timeout_ms",
        query.query_timeout_ms.map(|ms| ms.to_string()),
    )]);
    let path = format!("{API}/sockets/{}{q}", encode(id));
    let (body, printed) = success(out, api.get(&path).await?)?;
    if !printed {
        let nodes = strings(&body, "nodes");
        if nodes.is_empty() {
            println!("{id}: not connected");
        } else {
            println!("{id}: connected on {}", nodes.join(", "));
        }
    }
    warn_partial(&body);
    Ok(EXIT_OK)
}

/// Counters shown first by `stats`, in this order.
const KEY_COUNTERS: &[&str] = &[
    "connections_accepted",
    "connections_refused",
    "frames_received",
    "bus_messages.received",
    "bus_received_bytes",
    "cross_server_calls_refused",
    "http_api_requests.ok",
];

async fn stats(api: &mut ApiClient, out: Out) -> Outcome {
    let (body, printed) = success(out, api.get(&format!("{API}/stats")).await?)?;
    if printed {
        return Ok(EXIT_OK);
    }
    let live = strings(&body, "live_nodes");
    println!("node                        {}", str_field(&body, "node"));
    println!(
        "connections                 {}",
        number(&body, "connections")
    );
    println!(
        "live nodes                  {} ({})",
        live.len(),
        live.join(", ")
    );
    println!(
        "pending cross-server calls  {}",
        number(&body, "pending_cross_server_calls")
    );
    if let Some(last) = body
        .get("series")
        .and_then(Value::as_array)
        .and_then(|s| s.last())
    {
        println!(
            "last second                 {} frames in, {} bus in, {} HTTP, {} errors",
            number(last, "frames_in"),
            number(last, "bus_in"),
            number(last, "http"),
            number(last, "errors")
        );
    }
    let empty = Map::new();
    let counters = body
        .get("counters")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut rows: Vec<Vec<String>> = KEY_COUNTERS
        .iter()
        .filter_map(|k| counters.get(*k).map(|v| vec![(*k).to_owned(), compact(v)]))
        .collect();
    let mut rest: Vec<(&String, &Value)> = counters
        .iter()
        .filter(|(k, v)| !KEY_COUNTERS.contains(&k.as_str()) && v.as_u64() != Some(0))
        .collect();
    rest.sort_by(|a, b| a.0.cmp(b.0));
    rows.extend(rest.into_iter().map(|(k, v)| vec![k.clone(), compact(v)]));
    println!();
    print!("{}", table(&["COUNTER", "TOTAL"], &rows));
    println!("(other counters are 0; `--json` lists them all)");
    Ok(EXIT_OK)
}

/// `HH:MM:SS` (UTC) of a Unix time in milliseconds.
fn clock(ms: u64) -> String {
    let s = ms / 1000;
    format!("{:02}:{:02}:{:02}", (s / 3600) % 24, (s / 60) % 60, s % 60)
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One line of `watch`: what the node answered, or why it did not.
async fn watch_line(api: &mut ApiClient) -> Result<Value, Failure> {
    let health = api.get(&format!("{API}/health")).await?;
    if health.body.get("status").is_none() {
        return Err(Failure::Api(health));
    }
    let stats = api.get(&format!("{API}/stats")).await?;
    if !(200..300).contains(&stats.status) {
        return Err(Failure::Api(stats));
    }
    let s = &stats.body;
    let last = s
        .get("series")
        .and_then(Value::as_array)
        .and_then(|series| series.last());
    let rate = |k: &str| last.and_then(|l| l.get(k)).cloned().unwrap_or(Value::Null);
    Ok(json!({
        "time_ms": s.get("time_ms").and_then(Value::as_u64).unwrap_or_else(now_ms),
        "status": health.body.get("status").cloned().unwrap_or(Value::Null),
        "live_nodes": s.get("live_nodes").and_then(Value::as_array).map_or(0, Vec::len),
        "connections": s.get("connections").cloned().unwrap_or(Value::Null),
        "frames_in": rate("frames_in"),
        "bus_in": rate("bus_in"),
        "errors": rate("errors"),
    }))
}

async fn watch(api: &mut ApiClient, addr: &str, out: Out, every: Duration) -> Outcome {
    let header = [
        "TIME(UTC)",
        "STATUS",
        "NODES",
        "CONNS",
        "FRAMES/S",
        "BUS/S",
        "ERRORS/S",
    ];
    let widths = [9, 11, 5, 7, 8, 7, 8];
    if !out.json {
        println!("{}", row_line(&header.map(str::to_owned), &widths));
    }
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        tokio::select! {
            _ = &mut ctrl_c => return Ok(EXIT_OK),
            _ = tick.tick() => {}
        }
        let line = tokio::select! {
            _ = &mut ctrl_c => return Ok(EXIT_OK),
            line = watch_line(api) => line,
        };
        match line {
            Ok(v) => {
                if out.json {
                    println!("{}", compact(&v));
                } else {
                    let cell = |k: &str| match v.get(k) {
                        Some(Value::Null) | None => "-".to_owned(),
                        Some(Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                    };
                    let time = clock(v.get("time_ms").and_then(Value::as_u64).unwrap_or(0));
                    let cells = [
                        time,
                        cell("status"),
                        cell("live_nodes"),
                        cell("connections"),
                        cell("frames_in"),
                        cell("bus_in"),
                        cell("errors"),
                    ];
                    println!("{}", row_line(&cells, &widths));
                }
            }
            Err(Failure::Api(answer)) => {
                let unauthorized = answer.error_code() == Some("unauthorized");
                if out.json {
                    println!(
                        "{}",
                        json!({"time_ms": now_ms(), "status": "error", "error": answer.body})
                    );
                } else {
                    println!("{}  {}", clock(now_ms()), describe_error_answer(&answer));
                }
                // Retrying with the same token cannot help.
                if unauthorized {
                    return Err(Failure::Api(answer));
                }
            }
            Err(Failure::Client(e)) => {
                let reason = describe_client_error(&e, addr);
                if out.json {
                    println!(
                        "{}",
                        json!({"time_ms": now_ms(), "status": "unreachable", "error": reason})
                    );
                } else {
                    println!("{}  unreachable ({reason})", clock(now_ms()));
                }
            }
            Err(usage @ Failure::Usage(_)) => return Err(usage),
        }
    }
}

/// Cells padded to their widths (the last one not padded).
fn row_line(cells: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (i, cell) in cells.iter().enumerate() {
        if i + 1 == cells.len() {
            line.push_str(cell);
        } else {
            let w = widths.get(i).copied().unwrap_or(0);
            let _ = write!(line, "{cell:<w$}  ");
        }
    }
    line
}

/// A table with a header row, columns as wide as their widest cell.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = row_line(
        &header.iter().map(|h| (*h).to_owned()).collect::<Vec<_>>(),
        &widths,
    );
    text.push('\n');
    for row in rows {
        text.push_str(&row_line(row, &widths));
        text.push('\n');
    }
    text
}

/// JSON on one line.
fn compact(v: &Value) -> String {
    v.to_string()
}

fn str_field<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("?")
}

fn number(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(n @ Value::Number(_)) => n.to_string(),
        _ => "-".to_owned(),
    }
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// Everything but the unreserved characters of RFC 3986.
const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes a path segment or a query value.
fn encode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, NOT_UNRESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flags_parse() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn payloads_must_be_json() {
        assert_eq!(parse_payload(None).ok(), Some(Value::Null));
        assert_eq!(parse_payload(Some("\"hi\"")).ok(), Some(json!("hi")));
        match parse_payload(Some("hello")) {
            Err(Failure::Usage(m)) => assert!(m.contains("must be JSON"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rooms_split_at_the_first_slash() {
        assert_eq!(split_room("chat/a/b").ok(), Some(("chat", "a/b")));
        assert!(split_room("chat").is_err());
        assert!(split_room("/x").is_err());
        assert!(split_room("x/").is_err());
    }

    #[test]
    fn the_api_address_is_normalized() {
        assert_eq!(
            normalize_api("http://127.0.0.1:8090/api/v1/")
                .ok()
                .as_deref(),
            Some("127.0.0.1:8090")
        );
        assert_eq!(normalize_api("h:1").ok().as_deref(), Some("h:1"));
        assert!(normalize_api("https://h:1").is_err());
        assert!(normalize_api("").is_err());
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(encode("a b/c%"), "a%20b%2Fc%25");
        assert_eq!(encode("é"), "%C3%A9");
    }

    #[test]
    fn expect_is_a_count_or_all() {
        assert_eq!(parse_expect("all").ok(), Some(json!("all")));
        assert_eq!(parse_expect("3").ok(), Some(json!(3)));
        assert!(parse_expect("0").is_err());
        assert!(parse_expect("x").is_err());
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["A", "BB"],
            &[
                vec!["xxx".into(), "1".into()],
                vec!["y".into(), "22".into()],
            ],
        );
        assert_eq!(t, "A    BB\nxxx  1\ny    22\n");
        assert_eq!(clock(3_723_000), "01:02:03");
    }
}
