//! FAQ 5: a WebSocket node joining a running cluster. Two nodes run with a
//! player in room `chat/lobby`; a third node starts with the same bus
//! configuration and handlers; its player gets a broadcast of the first
//! node, talks to the room, and the third node counts the room
//! cluster-wide. In one process (on Redis with `--redis URL`).
//!
//! ```text
//! cargo run -p crosswire-recipes --bin faq05-join-node
//! ```

use clap::Parser;
use crosswire_recipes::{init_tracing, scaling, BackboneArgs};
use std::time::Duration;

/// A node joins the cluster.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    backbone: BackboneArgs,
}

#[tokio::main]
async fn main() -> crosswire_recipes::Result<()> {
    init_tracing();
    let args = Args::parse();
    let demo = scaling::demo_join(&args.backbone.backbone(), Duration::from_secs(5)).await?;
    println!("{}", serde_json::to_string_pretty(&demo)?);
    Ok(())
}
