//! `alicia-loadgen rumqttd-baseline`: rumqttd 0.20 serving MQTT through its own built-in
//! listener, the baseline the engine's front door must not slow down.
//!
//! It is this binary re-executed as a child process so that `compare` can start and stop
//! it like any other broker; `Broker::start()` has no shutdown of its own. The router is
//! sized as the engine sizes its embedded one, so the two differ only in the front door.

use std::collections::HashMap;
use std::io::Read;
use std::net::SocketAddr;

use anyhow::{bail, Result};
use rumqttd::{Config, ConnectionSettings, RouterConfig, ServerSettings};

pub fn config(listen: SocketAddr) -> Config {
    let server = ServerSettings {
        name: "v4-baseline".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 268_435_456,
            max_inflight_count: 100,
            auth: None,
            external_auth: None,
            dynamic_filters: false,
        },
    };
    Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 100,
            max_segment_size: 104_857_600,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("v4-baseline".to_string(), server)])),
        ..Default::default()
    }
}

/// Serves until killed. Returns an error only if the listener died (rumqttd then has
/// already logged why, typically a failed bind).
pub fn serve(listen: SocketAddr, exit_on_stdin_eof: bool) -> Result<()> {
    // rumqttd reports a failed bind only through tracing; make sure it reaches stderr.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(false).init();
    if exit_on_stdin_eof {
        // The parent holds our stdin open; when it goes away, so do we.
        std::thread::spawn(|| {
            let mut sink = [0u8; 64];
            while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
            std::process::exit(0);
        });
    }
    eprintln!("rumqttd-baseline: serving MQTT 3.1.1 on {listen}");
    rumqttd::Broker::new(config(listen)).start()?;
    bail!("rumqttd listener on {listen} stopped (see the log above; a failed bind is the usual cause)")
}
