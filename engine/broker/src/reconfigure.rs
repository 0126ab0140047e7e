//! `[security]` changed while the broker runs (the config service's updates): the
//! rules swap whole and every session's compiled rules follow; no connection drops.

use std::sync::Arc;

use alicia_config::SecuritySection;

use crate::context::Context;
use crate::io::NodeCommand;
use crate::Broker;

/// What the engine holds to put another `[security]` in force. Cheap to clone; it
/// holds the nodes' inboxes, not the nodes, so the broker still shuts down alone.
#[derive(Clone)]
pub struct SecurityControl {
    ctx: Arc<Context>,
    nodes: Vec<flume::Sender<NodeCommand>>,
}

impl std::fmt::Debug for SecurityControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecurityControl").finish_non_exhaustive()
    }
}

impl Broker {
    /// The handle a config update uses to change `[security]` live.
    pub fn security_control(&self) -> SecurityControl {
        SecurityControl { ctx: self.ctx.clone(), nodes: self.workers.inboxes() }
    }
}

impl SecurityControl {
    /// Reads `section`'s password, ACL and token key files and puts them, with its
    /// `allow_anonymous`, in force for every connected client. A file that does not read
    /// keeps the rules in force, and the error names it.
    pub fn apply(&self, section: &SecuritySection) -> Result<(), String> {
        self.ctx.gateway.reload_with(section).map_err(|e| format!("security: {e}"))?;
        for inbox in &self.nodes {
            let _ = inbox.send(NodeCommand::RulesChanged);
        }
        Ok(())
    }
}
