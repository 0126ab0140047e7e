//! The broker's configuration changed while it runs (the config service's updates and
//! SIGHUP): `[security]`'s rules swap whole and every session's compiled rules follow;
//! `[limits]` (and `[mqtt]`'s connect and write timeouts) swap whole and apply to what
//! happens next. No connection drops.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use alicia_config::{AliciaConfig, SecuritySection};

use crate::context::Context;
use crate::fd_limit;
use crate::io::NodeCommand;
use crate::limits::Limits;
use crate::Broker;

/// What the engine holds to put another configuration in force. Cheap to clone; it
/// holds the nodes' inboxes, not the nodes, so the broker still shuts down alone.
#[derive(Clone)]
pub struct BrokerControl {
    ctx: Arc<Context>,
    nodes: Vec<flume::Sender<NodeCommand>>,
}

impl std::fmt::Debug for BrokerControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerControl").finish_non_exhaustive()
    }
}

impl Broker {
    /// The handle a config update uses to change `[security]` and `[limits]` live.
    pub fn control(&self) -> BrokerControl {
        BrokerControl { ctx: self.ctx.clone(), nodes: self.workers.inboxes() }
    }
}

impl BrokerControl {
    /// Reads `section`'s password, ACL and token key files and puts them, with its
    /// `allow_anonymous`, in force for every connected client. A file that does not read
    /// keeps the rules in force, and the error names it.
    pub fn apply_security(&self, section: &SecuritySection) -> Result<(), String> {
        self.ctx.gateway.reload_with(section).map_err(|e| format!("security: {e}"))?;
        for inbox in &self.nodes {
            let _ = inbox.send(NodeCommand::RulesChanged);
        }
        Ok(())
    }

    /// Puts `config`'s `[limits]` (and `mqtt.connect_timeout_ms`, `write_timeout_ms`)
    /// in force: each limit applies from the next time it is looked at (a connection, a
    /// subscription, a retained message, a delivery), the message and byte rates to
    /// every connected client from its next PUBLISH (with a full second's burst). A lowered limit never drops what is held; what a
    /// connected client was told in its CONNACK (receive maximum, maximum packet size,
    /// topic alias maximum) stays for that connection. `max_queued_bytes_total` keeps
    /// its value until a restart. Refused (nothing changed) when `max_connections` is
    /// more than the process may open files for.
    pub fn apply_limits(&self, config: &AliciaConfig) -> Result<(), String> {
        let old = self.ctx.limits.load_full();
        let new = Limits::replacing(&old, config);
        if new == *old {
            return Ok(());
        }
        if new.max_connections > old.max_connections {
            let fds = fd_limit::raise().map_err(|e| format!("cannot read the file descriptor limit: {e}"))?;
            fd_limit::check(new.max_connections, fds)?;
        }
        let rate_changed = (new.max_messages_per_second, new.max_bytes_per_second)
            != (old.max_messages_per_second, old.max_bytes_per_second);
        let connect_rate_changed = (new.max_connects_per_ip_per_minute, new.rate_limit_loopback)
            != (old.max_connects_per_ip_per_minute, old.rate_limit_loopback);
        self.ctx.retained.set_limits(new.max_retained_messages, new.max_retained_bytes);
        if connect_rate_changed {
            self.ctx.gateway.set_connect_rate(new.max_connects_per_ip_per_minute, new.rate_limit_loopback);
        }
        self.ctx.limits.store(Arc::new(new));
        if rate_changed {
            // After the store: a connection that sees the new generation sees the new rate.
            self.ctx.rate_generation.fetch_add(1, Ordering::Release);
        }
        Ok(())
    }
}
