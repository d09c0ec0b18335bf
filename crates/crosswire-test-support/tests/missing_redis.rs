//! Without `redis-server` on PATH, starting one says what is missing and how
//! to install it. (Alone in its test binary: it empties PATH.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crosswire_test_support::RedisServer;

#[test]
#[should_panic(expected = "install it (apt-get install redis-server)")]
fn a_missing_redis_server_is_named_with_how_to_install_it() {
    // The only test of this binary: no other thread reads the environment.
    std::env::set_var("PATH", "/nonexistent");
    let _ = RedisServer::start();
}
