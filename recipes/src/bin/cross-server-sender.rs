//! The original's `examples/cross-server/sender.js`: waits until the named
//! server-only nodes are alive, then sends `say` every way (no reply,
//! targeted with a reply stream, broadcast with expected responses, the
//! collected "promise" form with `except_self`, and a call to a node that
//! does not exist, which times out) and prints each result in the
//! original's shapes.
//!
//! ```text
//! cargo run -p crosswire-recipes --bin cross-server-sender -- --servers serverA,serverB
//! ```

use clap::Parser;
use crosswire_recipes::{cross_pair, init_tracing, wait_for_nodes, BackboneArgs};
use std::time::Duration;

/// Sends `say` to the server-only nodes every way.
#[derive(Debug, Parser)]
struct Args {
    /// The sender's cluster-unique name.
    #[arg(long, default_value = "senderA")]
    name: String,
    /// The nodes that answer `say` (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "serverA")]
    servers: Vec<String>,
    /// Timeout of each call, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// How long the call to a missing node waits, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    ghost_wait_ms: u64,
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
    // The sender answers `say` too, as in the original.
    cross_pair::install_say(&node)?;
    node.ready().await;
    println!("waiting for {:?} ...", args.servers);
    wait_for_nodes(&node, &args.servers, Duration::from_secs(30)).await?;
    let report = cross_pair::run_sender(
        &node,
        &args.servers,
        Duration::from_millis(args.timeout_ms),
        Duration::from_millis(args.ghost_wait_ms),
    )
    .await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    node.shutdown(Duration::from_secs(2)).await;
    Ok(())
}
