//! The original's `examples/ws-cross-server/wsserver.js`: one WebSocket node
//! of a cluster. Clients connect with `?id=<player>`; `joinRoom
//! {"roomId": ...}` joins room `chat/<roomId>`; `command` pushes on the
//! client's behalf (so the original's `boss.js` client works too).
//!
//! ```text
//! redis-server --port 6379 &
//! cargo run -p crosswire-recipes --bin cluster-node -- --name ws1 --port 9001
//! cargo run -p crosswire-recipes --bin cluster-node -- --name ws2 --port 9002
//! cargo run -p crosswire-recipes --bin cluster-node -- --name ws3 --port 9003
//! cargo run -p crosswire-recipes --bin cluster-clients -- --ports 9001,9002,9003
//! cargo run -p crosswire-recipes --bin cluster-boss
//! ```

use clap::Parser;
use crosswire_recipes::{cluster, init_tracing, BackboneArgs};
use std::time::Duration;

/// One WebSocket node of the cluster example.
#[derive(Debug, Parser)]
struct Args {
    /// The node's cluster-unique name.
    #[arg(long, default_value = "ws1")]
    name: String,
    /// The interface to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The port to listen on.
    #[arg(long, default_value_t = 9001)]
    port: u16,
    #[command(flatten)]
    backbone: BackboneArgs,
}

#[tokio::main]
async fn main() -> crosswire_recipes::Result<()> {
    init_tracing();
    let args = Args::parse();
    let backbone = args.backbone.redis_or_default();
    let node = backbone
        .builder(&args.name)
        .await?
        .preset_room_namespaces([cluster::NAMESPACE])
        .build()?;
    cluster::install_ws_node(&node)?;
    let addr = node.listen((args.host.as_str(), args.port)).await?;
    node.ready().await;
    println!(
        "{} listening on ws://{addr}/?id=PLAYER; Ctrl-C to stop",
        node.server_name()
    );
    tokio::signal::ctrl_c().await?;
    node.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
