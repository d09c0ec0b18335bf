//! FAQ 17: authentication. A node that verifies a one-time token from the
//! URL before the upgrade (HTTP 401 otherwise), and a node that requires an
//! auth message within a timeout (4005 when it does not come, 4011 when it
//! is wrong).
//!
//! ```text
//! cargo run -p crosswire-recipes --bin faq17-auth
//! ```

use crosswire_recipes::{auth, init_tracing};
use std::time::Duration;

#[tokio::main]
async fn main() -> crosswire_recipes::Result<()> {
    init_tracing();
    let report = auth::demo(Duration::from_secs(5), Duration::from_secs(1)).await?;
    println!("URL token: connected as {:?}", report.url_user);
    println!(
        "URL token used twice: refused = {}",
        report.spent_token_refused
    );
    println!("auth message: authenticated as {:?}", report.message_user);
    let (code, reason) = &report.silent_closed;
    println!("no auth message: closed with {code} {reason:?}");
    Ok(())
}
