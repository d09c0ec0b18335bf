//! FAQ 17: a one-time token in the URL checked before the upgrade, and an
//! auth message with a timeout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire::Node;
use crosswire_client::{ConnectorOptions, EmitOptions};
use crosswire_recipes::auth::{self, TokenIssuer};
use crosswire_recipes::client::Player;
use serde_json::json;
use std::time::Duration;
use support::*;

/// The HTTP status of an upgrade attempt (101 when accepted).
async fn upgrade_status(url: &str) -> u16 {
    match bounded(tokio_tungstenite::connect_async(url)).await {
        Ok((_ws, response)) => response.status().as_u16(),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[tokio::test]
async fn demo_shows_both_modes() {
    let report = auth::demo(WAIT, Duration::from_millis(300)).await.unwrap();
    assert_eq!(report.url_user.as_deref(), Some("alice"));
    assert!(report.spent_token_refused);
    assert_eq!(report.message_user.as_deref(), Some("bob"));
    assert_eq!(
        report.silent_closed.0,
        crosswire::close_code::NOT_AUTHENTICATED
    );
}

#[tokio::test]
async fn url_tokens_are_checked_before_the_upgrade_and_work_once() {
    let issuer = TokenIssuer::new();
    let node = auth::token_in_url(Node::builder().server_name("ws1"), issuer.clone()).unwrap();
    let addr = node.listen("127.0.0.1:0").await.unwrap();

    assert_eq!(upgrade_status(&format!("ws://{addr}/")).await, 401);
    assert_eq!(
        upgrade_status(&format!("ws://{addr}/?token=forged")).await,
        401
    );
    let expired = issuer.issue("eve", Duration::ZERO);
    assert_eq!(
        upgrade_status(&format!("ws://{addr}/?token={expired}")).await,
        401
    );

    let token = issuer.issue("alice", Duration::from_secs(30));
    let alice = auth::connect_with_url_token(&format!("ws://{addr}"), &token, WAIT)
        .await
        .unwrap();
    let who = alice.request("whoami", &(), WAIT).await.unwrap().unwrap();
    assert_eq!(who["id"], "alice");
    assert!(node.get_socket("alice").is_some());
    // Spent.
    assert_eq!(
        upgrade_status(&format!("ws://{addr}/?token={token}")).await,
        401
    );
    assert_eq!(node.stats().connections_refused, 4);
}

#[tokio::test]
async fn the_auth_message_binds_the_user_and_gates_everything_before_it() {
    let issuer = TokenIssuer::new();
    let node = auth::auth_message(
        Node::builder().server_name("ws1"),
        issuer.clone(),
        Duration::from_secs(30),
    )
    .unwrap();
    let base = format!("ws://{}", node.listen("127.0.0.1:0").await.unwrap());
    let token = issuer.issue("bob", Duration::from_secs(3600));

    let mut p = Player::open(ConnectorOptions::new(base.as_str()), "bob", WAIT)
        .await
        .unwrap();
    // Before authenticating: events are dropped (no reply) and broadcasts skip it.
    let early = p
        .connector()
        .emit_with_options(
            "whoami",
            &(),
            EmitOptions::new().timeout(Duration::from_millis(200)),
        )
        .await;
    assert_eq!(early.unwrap_err().code(), "CALLBACK_TIMEOUT");
    node.broadcast("news", &"before").unwrap();

    let ok = p
        .request(auth::AUTH_EVENT, &json!({"token": token}), WAIT)
        .await
        .unwrap();
    assert_eq!(ok, Some(json!({"ok": true})));
    let who = p.request("whoami", &(), WAIT).await.unwrap().unwrap();
    assert_eq!(who["id"], "bob");
    node.broadcast("news", &"after").unwrap();
    assert_eq!(p.wait_push("news", WAIT).await.unwrap(), json!("after"));

    // The message token is reusable until it expires (it never was in a URL).
    let again = auth::connect_with_auth_message(&base, &token, WAIT)
        .await
        .unwrap();
    let who = again.request("whoami", &(), WAIT).await.unwrap().unwrap();
    assert_eq!(who["id"], "bob");
}

#[tokio::test]
async fn silence_closes_with_4005_and_a_bad_token_with_4011() {
    let issuer = TokenIssuer::new();
    let node = auth::auth_message(
        Node::builder().server_name("ws1"),
        issuer,
        Duration::from_millis(300),
    )
    .unwrap();
    let base = format!("ws://{}", node.listen("127.0.0.1:0").await.unwrap());

    let mut silent = Player::open(ConnectorOptions::new(base.as_str()), "s", WAIT)
        .await
        .unwrap();
    assert_eq!(
        silent.closed(WAIT).await.unwrap().0,
        crosswire::close_code::NOT_AUTHENTICATED
    );

    let mut wrong = Player::open(ConnectorOptions::new(base.as_str()), "w", WAIT)
        .await
        .unwrap();
    let answer = wrong
        .request(auth::AUTH_EVENT, &json!({"token": "forged"}), WAIT)
        .await
        .unwrap();
    assert_eq!(answer, Some(json!({"ok": false})));
    assert_eq!(
        wrong.closed(WAIT).await.unwrap().0,
        crosswire::close_code::AUTH_FAILED
    );
    assert!(auth::connect_with_auth_message(&base, "forged", WAIT)
        .await
        .is_err());
}
