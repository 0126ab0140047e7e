//! `[wyoming] allow`: a peer outside every block is closed at accept before a byte is
//! read, counted and told nothing; a peer inside is served as before. All of 127/8
//! reaches a loopback listener, so 127.0.0.2 and 127.0.0.3 stand in for other hosts.

mod support;

use std::sync::OnceLock;

use alicia_auth::Cidr;
use alicia_wyoming::{WyomingConfig, WyomingServer, SECURITY_REFUSALS_TOTAL};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use support::*;

/// The tests of this file read one counter: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One recorder for this test binary, installed before any server makes its meters.
fn snapshotter() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("the only recorder of this binary");
        snapshotter
    })
}

/// Refusals counted since the last call (a snapshot takes the counts it reports).
fn address_not_allowed() -> u64 {
    snapshotter()
        .snapshot()
        .into_vec()
        .into_iter()
        .find_map(|(key, _, _, value)| {
            let key = key.key();
            let labels: Vec<(&str, &str)> = key.labels().map(|l| (l.key(), l.value())).collect();
            let ours = key.name() == SECURITY_REFUSALS_TOTAL
                && labels == [("listener", "wyoming"), ("reason", "address_not_allowed")];
            match value {
                DebugValue::Counter(n) if ours => Some(n),
                _ => None,
            }
        })
        .unwrap_or(0)
}

fn allowing(blocks: &[&str]) -> WyomingConfig {
    WyomingConfig { allow: blocks.iter().map(|b| b.parse::<Cidr>().unwrap()).collect(), ..WyomingConfig::default() }
}

#[tokio::test]
async fn a_peer_outside_the_allow_list_is_closed_unanswered_and_counted() {
    let _turn = ONE_AT_A_TIME.lock().await;
    snapshotter();
    let server = start(allowing(&["127.0.0.2/32"])).await;
    address_not_allowed();

    // It even sends a request: nothing comes back, the connection just ends.
    let mut stranger = Client::connect_from(&server, "127.0.0.3").await;
    stranger.send("describe", serde_json::json!({})).await;
    assert_eq!(stranger.bytes_until_closed().await, b"", "a stranger gets nothing");
    let mut quiet = Client::connect_from(&server, "127.0.0.1").await;
    assert_eq!(quiet.bytes_until_closed().await, b"");
    assert_eq!(address_not_allowed(), 2);

    let mut allowed = Client::connect_from(&server, "127.0.0.2").await;
    allowed.assert_usable().await;
    assert_eq!(address_not_allowed(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn the_default_allows_loopback() {
    let _turn = ONE_AT_A_TIME.lock().await;
    snapshotter();
    let server = start_default().await;
    for source in ["127.0.0.1", "127.0.0.3"] {
        Client::connect_from(&server, source).await.assert_usable().await;
    }
    server.shutdown().await;
}

/// A dual-stack listener sees an IPv4 client as `::ffff:a.b.c.d`: it must match the
/// IPv4 blocks of the list, for and against.
#[tokio::test]
async fn ipv4_mapped_peers_of_a_dual_stack_listener_match_ipv4_blocks() {
    let _turn = ONE_AT_A_TIME.lock().await;
    snapshotter();
    let bind = |config| async move {
        match WyomingServer::bind("[::]:0".parse().unwrap(), std::sync::Arc::new(TestBackend::default()), config).await
        {
            Ok(server) => Some(server),
            Err(e) => {
                eprintln!("no IPv6 on this machine ({e}); skipped");
                None
            }
        }
    };
    let Some(server) = bind(allowing(&["127.0.0.2/32"])).await else { return };
    address_not_allowed();
    let to_v4 = |server: &WyomingServer| std::net::SocketAddr::from(([127, 0, 0, 1], server.addr().port()));

    let mut allowed = Client::connect_to(to_v4(&server), "127.0.0.2").await;
    allowed.assert_usable().await;
    let mut stranger = Client::connect_to(to_v4(&server), "127.0.0.3").await;
    assert_eq!(stranger.bytes_until_closed().await, b"");
    assert_eq!(address_not_allowed(), 1);
    server.shutdown().await;
}
