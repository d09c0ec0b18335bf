//! `rediss://` (feature `tls`) against a real `redis-server` that speaks TLS
//! only (`--port 0 --tls-port`), with a certificate authority made in the
//! test: buses that trust it publish and receive, with and without client
//! certificates; a bus that trusts another authority, or presents no client
//! certificate where one is required, says why it cannot connect.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use crosswire::bus::Bus;
use crosswire_redis::{RedisBus, RedisBusConfig, RedisBusError, RedisTls, Strategy};
use std::time::Duration;
use support::*;

const LONG: Duration = Duration::from_secs(10);

/// The test configuration for `server`'s `rediss://` URL with `tls`.
fn tls_config(server: &RedisServer, tls: RedisTls) -> RedisBusConfig {
    RedisBusConfig {
        nodes: vec![server.tls_url()],
        tls: Some(tls),
        ..config(&[server], Strategy::Random)
    }
}

/// Two endpoints exchange messages through `server`.
async fn exchange(server: &RedisServer, tls: RedisTls) {
    let a = connect(tls_config(server, tls.clone())).await;
    let b = connect(tls_config(server, tls)).await;
    let inbox_b = Inbox::new(&b);
    within(LONG, b.subscribe("csbp:server_bridge"))
        .await
        .unwrap();
    let binary: Vec<u8> = (0..=255u8).collect();
    publish(&a, "csbp:server_bridge", binary.clone()).await;
    publish(&a, "csbp:server_bridge", "over tls").await;
    eventually(LONG, "b got both messages", || {
        inbox_b.counts("csbp:server_bridge").len() == 2
    })
    .await;
    let got = inbox_b.payloads("csbp:server_bridge");
    assert!(got.iter().any(|p| p[..] == binary[..]));
    assert!(got.iter().any(|p| &p[..] == b"over tls"));
    assert_eq!(a.stats().publish_failures, 0);
    let node = &a.nodes()[0];
    assert!(node.publish_target && node.error.is_none(), "{node:?}");
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buses_trusting_the_test_ca_publish_and_receive_over_rediss() {
    let pki = TestPki::new("rediss");
    let server = RedisServer::start_tls(&pki, false);
    exchange(&server, RedisTls::trust_ca(pki.ca_pem())).await;
    // The CA read from its file works the same.
    exchange(&server, RedisTls::read_ca_file(pki.ca_path()).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_presents_the_client_certificate() {
    let pki = TestPki::new("rediss-mutual");
    let server = RedisServer::start_tls(&pki, true);
    let client = pki.client();
    exchange(
        &server,
        RedisTls::trust_ca(pki.ca_pem()).with_client_cert(&client.cert, &client.key),
    )
    .await;

    // Without it the server refuses the connection.
    let bus = RedisBus::connect(tls_config(&server, RedisTls::trust_ca(pki.ca_pem())))
        .await
        .unwrap();
    eventually(LONG, "the refusal reported", || {
        bus.nodes()[0].error.is_some()
    })
    .await;
    let node = &bus.nodes()[0];
    assert!(!node.publish_target, "{node:?}");
    bus.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_trusting_another_ca_says_the_certificate_is_not_trusted() {
    let pki = TestPki::new("rediss-server");
    let server = RedisServer::start_tls(&pki, false);
    let stranger = TestPki::new("rediss-stranger");
    let bus = RedisBus::connect(tls_config(&server, RedisTls::trust_ca(stranger.ca_pem())))
        .await
        .unwrap();
    eventually(LONG, "the certificate error reported", || {
        bus.nodes()[0].error.is_some()
    })
    .await;
    let node = &bus.nodes()[0];
    let error = node.error.clone().unwrap();
    assert!(!node.publish_target);
    assert!(
        error.contains("certificate") && error.contains("UnknownIssuer"),
        "not a clear certificate error: {error}"
    );
    assert!(!bus.health().healthy, "{:?}", bus.health());
    bus.close().await;
}

#[tokio::test]
async fn unusable_tls_settings_are_refused_at_connect() {
    let pki = TestPki::new("rediss-settings");
    let url = "rediss://127.0.0.1:1";
    let cases = [
        RedisTls::trust_ca("not a certificate"),
        RedisTls {
            client_cert_pem: Some(pki.client().cert.clone()),
            ..RedisTls::trust_ca(pki.ca_pem())
        },
        RedisTls {
            client_key_pem: Some(pki.client().key.clone()),
            ..RedisTls::default()
        },
    ];
    for tls in cases {
        let config = RedisBusConfig {
            tls: Some(tls.clone()),
            ..RedisBusConfig::new([url])
        };
        match RedisBus::connect(config).await {
            Err(RedisBusError::Tls {
                url: shown,
                message,
            }) => {
                assert_eq!(shown, url);
                assert!(!message.is_empty());
            }
            Err(other) => panic!("{tls:?}: unexpected error {other}"),
            Ok(_) => panic!("{tls:?}: accepted"),
        }
    }
}
