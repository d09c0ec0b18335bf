//! FAQ 12: cluster-wide statistics. Three WebSocket nodes, six players,
//! four of them in room `chat/1000`; one node sums the room's members over
//! the cluster and collects every node's numbers. In one process (on Redis
//! with `--redis URL`).
//!
//! ```text
//! cargo run -p crosswire-recipes --bin faq12-cluster-stats
//! ```

use clap::Parser;
use crosswire_recipes::{init_tracing, stats, BackboneArgs};
use std::time::Duration;

/// Cluster-wide statistics.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    backbone: BackboneArgs,
}

#[tokio::main]
async fn main() -> crosswire_recipes::Result<()> {
    init_tracing();
    let args = Args::parse();
    let report = stats::demo(&args.backbone.backbone(), Duration::from_secs(5)).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}
