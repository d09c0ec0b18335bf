//! Command-line interface of `loadgen` (`docs/benchmarks.md` §6).

use crate::loadgen::wire::Proto;
use clap::{Args, Parser, Subcommand, ValueEnum};

/// Load generator for the bench servers of `docs/benchmarks.md`.
#[derive(Parser, Debug, Clone)]
#[command(name = "loadgen", version, about)]
pub struct Cli {
    /// Options shared by every scenario.
    #[command(flatten)]
    pub common: Common,
    /// The scenario.
    #[command(subcommand)]
    pub cmd: Cmd,
}

/// Options shared by every scenario.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Bench server URL, `ws://127.0.0.1:PORT` (repeatable; client i goes to
    /// URL i mod count). Loopback addresses only.
    #[arg(long = "url", global = true)]
    pub urls: Vec<String>,
    /// Wire protocol.
    #[arg(long, value_enum, default_value_t = Proto::Original, global = true)]
    pub proto: Proto,
    /// Watched process `LABEL=PID` (repeatable): its CPU (user and system)
    /// and, for `conns`, its RSS. Labels starting with `redis` or `nats` count
    /// as the bus, all others as bench servers (for CPU per delivered frame).
    #[arg(long = "pid", global = true)]
    pub pids: Vec<String>,
    /// Source addresses 127.0.0.1..=127.0.0.K to spread connections over;
    /// 0 = automatic (one address per 28,000 connections).
    #[arg(long, default_value_t = 0, global = true)]
    pub src_ips: usize,
    /// Generator threads (one single-threaded runtime each).
    #[arg(long, default_value_t = 2, global = true)]
    pub threads: usize,
    /// Microseconds each generator thread sleeps before waiting for I/O when
    /// it runs out of work (receive coalescing; 0 = off).
    #[arg(long, default_value_t = 200, global = true)]
    pub park_us: u64,
    /// Heartbeat string of the original protocol.
    #[arg(long, default_value = "", global = true)]
    pub heartbeat: String,
    /// Connect opted into missed-message recovery (`cwRecovery=1`, original
    /// protocol only): room messages of rooms with history then carry their
    /// position, as for a recovering client (`bench-server --history`).
    #[arg(long, global = true)]
    pub recovery: bool,
    /// Concurrent connection attempts while opening connections.
    #[arg(long, default_value_t = 200, global = true)]
    pub connect_concurrency: usize,
    /// Name of the system under test (copied into the JSON line).
    #[arg(long, default_value = "", global = true)]
    pub system: String,
    /// Name of the case (copied into the JSON line).
    #[arg(long = "case", default_value = "", global = true)]
    pub case_name: String,
    /// Hard time limit in seconds for the whole run (at most 3600).
    #[arg(long, default_value_t = 3600, global = true)]
    pub max_time: u64,
    /// The server's Prometheus metrics, `http://127.0.0.1:PORT/metrics`
    /// (loopback only; read by `slow` and `storm` before and after).
    #[arg(long, global = true)]
    pub metrics: Option<String>,
}

/// Scenarios and helpers.
#[derive(Subcommand, Debug, Clone)]
pub enum Cmd {
    /// N subscribers in one room, P publishers sending `room` (or `all`).
    Fanout(FanoutArgs),
    /// C clients sending `to` to random other clients (other node if several).
    Unicast(UnicastArgs),
    /// C clients closed-loop `echo`.
    Echo(LoopArgs),
    /// C clients closed-loop `rpc` to the next node.
    Rpc(RpcArgs),
    /// C clients join one room, then closed-loop `count`.
    Count(LoopArgs),
    /// N idle connections (heartbeat only); RSS per connection with --pid.
    Conns(ConnsArgs),
    /// Steady fan-out to N receivers while S clients in the same room stop
    /// reading their sockets; the receivers must not notice, the server's
    /// RSS must stay bounded.
    Slow(SlowArgs),
    /// Steady fan-out to N receivers while K other clients connect and drop
    /// all at once, R rounds; the receivers must not notice, the server's RSS
    /// must come back near its baseline.
    Storm(StormArgs),
    /// C opted-in clients in R rooms under a steady stream; a share of them
    /// drop (TCP reset, no close frame) for a while and come back resuming
    /// from their positions: every message must arrive once and in order,
    /// unless the server says the recovery was incomplete.
    Recovery(RecoveryArgs),
    /// Users logging in twice at once on several nodes (bench-server
    /// --presence bench --one-session): duplicate sessions, presence ghosts
    /// and missing members on every node, cluster query latency, a frozen
    /// node (partial answers) and a killed node (leaves announced).
    Presence(PresenceArgs),
    /// Bus traffic per node: C clients over the --url nodes in rooms of
    /// --room-size placed at random, each sending pairs of a room message and
    /// a message to a random client; prints the bus messages and bytes each
    /// node received (crosswire bench-server `stats`), deliveries, loss and
    /// latency.
    Traffic(TrafficArgs),
    /// Prints a crosswire / peer table from JSON result lines (files or -).
    Compare(CompareArgs),
    /// Prints N free loopback TCP ports (for scripts).
    FreePorts {
        /// How many.
        #[arg(default_value_t = 1)]
        n: usize,
    },
}

/// Rate control shared by `fanout` and `unicast`.
#[derive(Args, Debug, Clone)]
pub struct RateArgs {
    /// Total publish rate in messages per second (the start rate with --find-max).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds of sending per step.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Ramp the rate (x --ramp) until a step fails, then bisect.
    #[arg(long)]
    pub find_max: bool,
    /// Ramp factor of --find-max.
    #[arg(long, default_value_t = 2.0)]
    pub ramp: f64,
    /// A step passes only if p99 latency is below this (ms).
    #[arg(long, default_value_t = 50.0)]
    pub p99_ms: f64,
    /// Most steps of --find-max.
    #[arg(long, default_value_t = 16)]
    pub max_steps: usize,
    /// Bisection ends when (fail - pass) / pass is below this.
    #[arg(long, default_value_t = 0.05)]
    pub precision: f64,
    /// Highest rate --find-max tries (msgs/s).
    #[arg(long, default_value_t = 1_000_000.0)]
    pub max_rate: f64,
    /// Seconds of an unmeasured warm-up step at the start rate (0 = none).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
}

/// Event used by `fanout`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum FanEvent {
    /// `room`: to the room's members on all nodes.
    Room,
    /// `all`: to every client on every node (publishers included).
    All,
}

/// `fanout` options.
#[derive(Args, Debug, Clone)]
pub struct FanoutArgs {
    /// Subscribers.
    #[arg(short = 'n', long = "subscribers", default_value_t = 1000)]
    pub n: usize,
    /// Publishers (not in the room).
    #[arg(short = 'p', long = "publishers", default_value_t = 10)]
    pub p: usize,
    /// Event to publish.
    #[arg(long, value_enum, default_value_t = FanEvent::Room)]
    pub event: FanEvent,
    /// Freeze this process (SIGSTOP, e.g. a Redis server) during the
    /// measured step, then thaw it (SIGCONT); a fixed rate only.
    #[arg(long, value_name = "PID", conflicts_with = "find_max")]
    pub freeze_pid: Option<u32>,
    /// Seconds into the measured step when --freeze-pid is frozen.
    #[arg(long, default_value_t = 2.0)]
    pub freeze_at: f64,
    /// Seconds --freeze-pid stays frozen.
    #[arg(long, default_value_t = 3.0)]
    pub freeze_for: f64,
    /// Publish through a crosswire node's HTTP API at this address
    /// (`127.0.0.1:PORT`, repeatable: publisher i posts to address i mod
    /// count) instead of WebSocket publishers: each publisher POSTs its
    /// messages to `/api/v1/rooms/send` (or `/api/v1/broadcast` with
    /// `--event all`) on one keep-alive connection; latency runs from the
    /// request's start to the WebSocket delivery.
    #[arg(long = "http-api", value_name = "ADDR", requires = "http_token")]
    pub http_api: Vec<String>,
    /// Bearer token of --http-api.
    #[arg(long, env = "CROSSWIRE_HTTP_TOKENS", hide_env_values = true)]
    pub http_token: Option<String>,
    /// Rate control.
    #[command(flatten)]
    pub rate: RateArgs,
}

/// `unicast` options.
#[derive(Args, Debug, Clone)]
pub struct UnicastArgs {
    /// Clients.
    #[arg(short = 'c', long = "clients", default_value_t = 1000)]
    pub c: usize,
    /// Closed loop: W messages in flight per client (instead of --rate).
    #[arg(long)]
    pub window: Option<usize>,
    /// Rate control.
    #[command(flatten)]
    pub rate: RateArgs,
}

/// Options of the closed-loop scenarios.
#[derive(Args, Debug, Clone)]
pub struct LoopArgs {
    /// Clients.
    #[arg(short = 'c', long = "clients", default_value_t = 50)]
    pub c: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Unmeasured seconds before.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
}

/// `rpc` options.
#[derive(Args, Debug, Clone)]
pub struct RpcArgs {
    /// Loop options.
    #[command(flatten)]
    pub lp: LoopArgs,
    /// Node names in --url order (default n1, n2, ...).
    #[arg(long, value_delimiter = ',')]
    pub names: Vec<String>,
}

/// `conns` options.
#[derive(Args, Debug, Clone)]
pub struct ConnsArgs {
    /// Connections.
    #[arg(short = 'n', long = "connections", default_value_t = 1000)]
    pub n: usize,
    /// Seconds to wait after the last connection before reading RSS.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
    /// Seconds to hold the connections (checking that none drops).
    #[arg(long, default_value_t = 5.0)]
    pub hold: f64,
    /// Seconds between heartbeats (original protocol; 0 = none).
    #[arg(long, default_value_t = 10.0)]
    pub heartbeat_secs: f64,
}

/// `compare` options.
#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Files of JSON lines (`-` = stdin).
    pub files: Vec<String>,
    /// System whose figures are the numerator.
    #[arg(long, default_value = "crosswire")]
    pub ours: String,
    /// System whose figures are the denominator.
    #[arg(long, default_value = "socketio")]
    pub peer: String,
}

/// The steady fan-out of `slow` and `storm`, and their RSS bound.
#[derive(Args, Debug, Clone)]
pub struct SteadyArgs {
    /// Healthy receivers in the room.
    #[arg(short = 'n', long = "receivers", default_value_t = 1000)]
    pub n: usize,
    /// Publishers (not in the room).
    #[arg(short = 'p', long = "publishers", default_value_t = 10)]
    pub p: usize,
    /// Total publish rate in messages per second (each reaches every receiver).
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// The receivers' p99 latency must stay below this (ms).
    #[arg(long, default_value_t = 50.0)]
    pub p99_ms: f64,
    /// Filler bytes added to every published datum (bigger frames fill a
    /// socket that does not read sooner).
    #[arg(long, default_value_t = 0)]
    pub pad: usize,
    /// Seconds of an unmeasured warm-up of the fan-out (0 = none).
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Seconds between two readings of the server's RSS (--pid).
    #[arg(long, default_value_t = 0.2)]
    pub rss_every: f64,
}

/// `slow` options.
#[derive(Args, Debug, Clone)]
pub struct SlowArgs {
    /// Steady fan-out.
    #[command(flatten)]
    pub steady: SteadyArgs,
    /// Clients that join the room and never read.
    #[arg(short = 's', long = "slow", default_value_t = 10)]
    pub s: usize,
    /// Measured seconds of fan-out.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Fail when the server's RSS peak exceeds its start by more (MiB).
    #[arg(long, default_value_t = 64.0)]
    pub max_rss_growth_mib: f64,
    /// Fail unless the server closed every slow socket during the run.
    #[arg(long)]
    pub require_closed: bool,
}

/// `storm` options.
#[derive(Args, Debug, Clone)]
pub struct StormArgs {
    /// Steady fan-out.
    #[command(flatten)]
    pub steady: SteadyArgs,
    /// Clients that connect and drop all at once in every round.
    #[arg(short = 'k', long = "clients", default_value_t = 5000)]
    pub k: usize,
    /// Rounds.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Seconds the K clients stay connected in a round.
    #[arg(long, default_value_t = 1.0)]
    pub hold: f64,
    /// Seconds between rounds.
    #[arg(long, default_value_t = 1.0)]
    pub gap: f64,
    /// Seconds of fan-out before the baseline RSS reading, and after the
    /// last round before the final one.
    #[arg(long, default_value_t = 3.0)]
    pub settle: f64,
    /// Generator threads of the storm clients (apart from the receivers').
    #[arg(long, default_value_t = 1)]
    pub storm_threads: usize,
    /// The storm clients do not join a room (by default they join room
    /// `storm`, which the node must clean up when they go).
    #[arg(long)]
    pub no_join: bool,
    /// Longest measured fan-out (s); the run fails if the rounds take longer.
    #[arg(long, default_value_t = 300.0)]
    pub max_duration: f64,
    /// Fail when the server's RSS after the last round exceeds the baseline
    /// by more (MiB). The allocator keeps memory freed after the first
    /// round's peak for reuse, so this bounds the high-water mark.
    #[arg(long, default_value_t = 64.0)]
    pub max_rss_after_mib: f64,
    /// Fail when the server's RSS after the last round exceeds its RSS after
    /// the first round by more (MiB): memory must not grow round after
    /// round (the leak check).
    #[arg(long, default_value_t = 16.0)]
    pub max_rss_growth_mib: f64,
}

/// `presence` options.
#[derive(Args, Debug, Clone)]
pub struct PresenceArgs {
    /// Users; each logs in twice at once (two connections, two nodes).
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// Rooms `p0..` of namespace `bench` (default: users / 10).
    #[arg(long)]
    pub rooms: Option<usize>,
    /// Users logging in at once.
    #[arg(long, default_value_t = 1000)]
    pub wave: usize,
    /// Seconds to wait after the logins before checking.
    #[arg(long, default_value_t = 3.0)]
    pub settle: f64,
    /// Cluster-wide room queries to time.
    #[arg(long, default_value_t = 100)]
    pub queries: usize,
    /// Timeout of each cluster-wide query, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    pub query_timeout_ms: u64,
    /// Freeze this node process (SIGSTOP) for three queries, which must be
    /// partial (not a hang); not the last --url's.
    #[arg(long, value_name = "PID")]
    pub freeze_pid: Option<u32>,
    /// Kill -9 the first --url's node process at the end: each of its
    /// members must be announced as leaving.
    #[arg(long, value_name = "PID")]
    pub kill_node_pid: Option<u32>,
    /// The servers' membership timeout (bench-server --membership-ms), the
    /// bound of the leave latency (plus 1 s).
    #[arg(long, default_value_t = 7000)]
    pub member_timeout_ms: u64,
}

/// `recovery` options.
#[derive(Args, Debug, Clone)]
pub struct RecoveryArgs {
    /// Clients (opted into recovery, each joining --rooms-per-client rooms).
    #[arg(short = 'c', long = "clients", default_value_t = 50)]
    pub c: usize,
    /// Rooms (`r0`, `r1`, ... of namespace `bench`).
    #[arg(short = 'r', long = "rooms", default_value_t = 5)]
    pub rooms: usize,
    /// Rooms each client joins: client i joins rooms i, i+1, ... (mod --rooms).
    #[arg(long, default_value_t = 2)]
    pub rooms_per_client: usize,
    /// Total rate of the stream in messages per second, spread over the
    /// rooms in turn.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Seconds of the stream.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Share of the clients that drop (0 to 1).
    #[arg(long, default_value_t = 0.3)]
    pub drop_share: f64,
    /// Seconds after the start of the stream when the first client drops.
    #[arg(long, default_value_t = 2.0)]
    pub drop_at: f64,
    /// Seconds over which the drops are spread (0 = all at once).
    #[arg(long, default_value_t = 0.0)]
    pub spread: f64,
    /// Seconds a dropped client stays away before it reconnects.
    #[arg(long, default_value_t = 2.0)]
    pub down: f64,
    /// A dropped client reconnects to the next --url (node i+1 mod nodes)
    /// instead of its own.
    #[arg(long = "move")]
    pub move_node: bool,
    /// Most seconds to wait, after the stream, for the clients to catch up.
    #[arg(long, default_value_t = 10.0)]
    pub drain: f64,
    /// Kill -9 the process of the first --url's node this many seconds into
    /// the stream (needs --kill-node-pid and a second --url): its clients
    /// reconnect at once to the next node and resume there. The sender is on
    /// the last node.
    #[arg(long, value_name = "S", requires = "kill_node_pid")]
    pub kill_node_at: Option<f64>,
    /// Process id of the first --url's node, for --kill-node-at.
    #[arg(long, value_name = "PID", requires = "kill_node_at")]
    pub kill_node_pid: Option<u32>,
    /// Kill -9 a Redis server this many seconds into the stream (needs
    /// --kill-redis-pid): the rooms whose history it held recover
    /// incompletely (`epoch_changed` or `unavailable`), and only those.
    #[arg(long, value_name = "S", requires = "kill_redis_pid")]
    pub kill_redis_at: Option<f64>,
    /// Process id of the Redis server for --kill-redis-at.
    #[arg(long, value_name = "PID", requires = "kill_redis_at")]
    pub kill_redis_pid: Option<u32>,
}

/// `traffic` options.
#[derive(Args, Debug, Clone)]
pub struct TrafficArgs {
    /// Clients (client i on --url i mod K).
    #[arg(short = 'c', long = "clients", default_value_t = 2000)]
    pub c: usize,
    /// Members per room; rooms are drawn at random over the clients.
    #[arg(long, default_value_t = 2)]
    pub room_size: usize,
    /// Pairs (a room message and a unicast) per second, all clients together.
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Unmeasured seconds before.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// The step fails if the p99 latency is above this (ms).
    #[arg(long, default_value_t = 50.0)]
    pub p99_ms: f64,
    /// Seed of the room draw.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}
