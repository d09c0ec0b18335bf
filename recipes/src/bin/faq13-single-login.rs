//! FAQ 13: one login per user across the cluster. `alice` logs in on node
//! `n1`, then on node `n2`: `n2` finds her on `n1` with a cross-server call
//! and has `n1` close the old connection with 4012. In one process (on
//! Redis with `--redis URL`).
//!
//! ```text
//! cargo run -p crosswire-recipes --bin faq13-single-login
//! ```

use clap::Parser;
use crosswire_recipes::{init_tracing, single_login, BackboneArgs};
use std::time::Duration;

/// One login per user.
#[derive(Debug, Parser)]
struct Args {
    #[command(flatten)]
    backbone: BackboneArgs,
}

#[tokio::main]
async fn main() -> crosswire_recipes::Result<()> {
    init_tracing();
    let args = Args::parse();
    let report = single_login::demo(&args.backbone.backbone(), Duration::from_secs(5)).await?;
    let (code, reason) = &report.first_closed;
    println!("alice's first connection (n1) closed: {code} {reason:?}");
    println!("alice's second connection is on {:?}", report.second_server);
    println!("n1 finds alice on {:?}", report.holders);
    Ok(())
}
