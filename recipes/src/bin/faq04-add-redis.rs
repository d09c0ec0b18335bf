//! FAQ 4: adding a Redis node at runtime. Starts two nodes on the Redis
//! nodes given with `--redis`, then asks every node, through a cross-server
//! broadcast, to add the Redis node given with `--add`, and prints who
//! confirmed and each bus's Redis nodes.
//!
//! ```text
//! redis-server --port 6379 & redis-server --port 6380 &
//! cargo run -p crosswire-recipes --bin faq04-add-redis -- --redis redis://127.0.0.1:6379 --add redis://127.0.0.1:6380
//! ```

use clap::Parser;
use crosswire_recipes::{init_tracing, scaling};
use std::time::Duration;

/// Adds a Redis node to a running cluster.
#[derive(Debug, Parser)]
struct Args {
    /// The Redis nodes the cluster starts with (repeatable).
    #[arg(
        long = "redis",
        value_name = "URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    redis: Vec<String>,
    /// The Redis node to add.
    #[arg(long, value_name = "URL", default_value = "redis://127.0.0.1:6380")]
    add: String,
}

#[tokio::main]
async fn main() -> crosswire_recipes::Result<()> {
    init_tracing();
    let args = Args::parse();
    let demo = scaling::demo_add_redis(&args.redis, &args.add, Duration::from_secs(5)).await?;
    println!("{}", serde_json::to_string_pretty(&demo)?);
    Ok(())
}
