//! The "boss" of the original's `examples/ws-cross-server`, as a
//! server-only node: once it sees the WebSocket nodes, it pushes `say` to
//! everyone, to player 13, to players 3, 10, 25 and 37, and to room
//! `chat/1000`, wherever they are connected.
//!
//! ```text
//! cargo run -p crosswire-recipes --bin cluster-boss -- --nodes 3
//! ```

use clap::Parser;
use crosswire_recipes::{cluster, init_tracing, wait_for_live_nodes, BackboneArgs};
use std::time::Duration;

/// Pushes to every node's clients.
#[derive(Debug, Parser)]
struct Args {
    /// The boss's cluster-unique name.
    #[arg(long, default_value = "boss")]
    name: String,
    /// WebSocket nodes to wait for before pushing.
    #[arg(long, default_value_t = 1)]
    nodes: usize,
    /// Pause between two pushes, in milliseconds.
    #[arg(long, default_value_t = 3000)]
    pause_ms: u64,
    #[command(flatten)]
    backbone: BackboneArgs,
}

#[tokio::main]
async fn main() -> crosswire_recipes::Result<()> {
    init_tracing();
    let args = Args::parse();
    let backbone = args.backbone.redis_or_default();
    let boss = backbone
        .builder(&args.name)
        .await?
        .websocket(false)
        .build()?;
    boss.ready().await;
    let live = wait_for_live_nodes(&boss, args.nodes + 1, Duration::from_secs(30)).await?;
    println!("cluster: {live:?}");
    let run = cluster::run_boss(
        &boss,
        &cluster::original_script(),
        Duration::from_millis(args.pause_ms),
    )
    .await?;
    println!("{} pushes sent", run.pushes);
    // Sends do not report when the bus has written them, and shutting the
    // bus down drops what it has not written yet: give it a moment.
    tokio::time::sleep(Duration::from_millis(500)).await;
    boss.shutdown(Duration::from_secs(2)).await;
    Ok(())
}
