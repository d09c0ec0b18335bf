//! The original's `examples/cross-server/cserver.js`: a node without
//! WebSocket clients that answers the cross-server event `say`. Run two of
//! them and a sender (`cross-server-sender`) on the same Redis:
//!
//! ```text
//! redis-server --port 6379 &
//! cargo run -p crosswire-recipes --bin cross-server-node -- --name serverA
//! cargo run -p crosswire-recipes --bin cross-server-node -- --name serverB
//! cargo run -p crosswire-recipes --bin cross-server-sender -- --servers serverA,serverB
//! ```

use clap::Parser;
use crosswire_recipes::{cross_pair, init_tracing, BackboneArgs};
use std::time::Duration;

/// A server-only node answering `say`.
#[derive(Debug, Parser)]
struct Args {
    /// The node's cluster-unique name.
    #[arg(long, default_value = "serverA")]
    name: String,
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
        .websocket(false)
        .build()?;
    cross_pair::install_say(&node)?;
    node.ready().await;
    println!("{} answers `say`; Ctrl-C to stop", node.server_name());
    tokio::signal::ctrl_c().await?;
    node.shutdown(Duration::from_secs(2)).await;
    Ok(())
}
