//! FAQ 1: client → WebSocket node → logic node → callback back to the
//! client. Runs a logic node `gameServer`, two WebSocket nodes and two
//! players asking for a ranked match, in one process (on Redis with
//! `--redis URL`), and prints what the players got.
//!
//! ```text
//! cargo run -p crosswire-recipes --bin faq01-matchmaking
//! ```

use clap::Parser;
use crosswire_recipes::{init_tracing, matchmaking, BackboneArgs};
use std::time::Duration;

/// The matchmaking chain.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    backbone: BackboneArgs,
}

#[tokio::main]
async fn main() -> crosswire_recipes::Result<()> {
    init_tracing();
    let args = Args::parse();
    let report = matchmaking::demo(&args.backbone.backbone(), Duration::from_secs(5)).await?;
    println!("p1's callback: {}", report.first_reply);
    println!("p2's callback: {}", report.second_reply);
    println!(
        "p1's push {}: {}",
        matchmaking::MATCH_FOUND,
        report.first_push
    );
    Ok(())
}
