//! The ACL for in-process clients: each service joins the bus under a username of its
//! own (`[security] service_users`) and obeys the same rules as any other client,
//! rebuilt when SIGHUP reloads them.

use std::net::SocketAddr;

use alicia_audit::AuditAction;

use crate::context::Context;
use crate::gateway::Who;
use crate::metrics::SecurityRefusal;
use crate::security::{self, Rules};

#[derive(Clone)]
pub(crate) struct LocalRules {
    who: Who,
    /// The gateway's generation the rules were made under.
    generation: u64,
    rules: Rules,
}

impl LocalRules {
    pub(crate) fn new(ctx: &Context, name: &str) -> LocalRules {
        let username = ctx.gateway.service_user(name);
        let who = Who {
            listener: "local",
            peer: SocketAddr::from(([127, 0, 0, 1], 0)),
            client_id: Some(name.to_string()),
            username: Some(username),
        };
        let generation = ctx.gateway.generation();
        let rules = ctx.gateway.rules_for(who.username.as_deref(), name);
        LocalRules { who, generation, rules }
    }

    fn current(&mut self, ctx: &Context) -> &Rules {
        let generation = ctx.gateway.generation();
        if generation != self.generation {
            let name = self.who.client_id.as_deref().unwrap_or_default();
            self.rules = ctx.gateway.rules_for(self.who.username.as_deref(), name);
            self.generation = generation;
        }
        &self.rules
    }

    pub(crate) fn may_publish(&mut self, ctx: &Context, topic: &str) -> bool {
        security::may_publish(self.current(ctx), topic)
    }

    pub(crate) fn may_subscribe(&mut self, ctx: &Context, filter: &str) -> bool {
        security::may_subscribe(self.current(ctx), filter)
    }

    pub(crate) fn may_read(&mut self, ctx: &Context, topic: &str) -> bool {
        security::may_read(self.current(ctx), topic)
    }

    /// Counts and audits a refusal of this service's, as for any client.
    pub(crate) fn refused(&self, ctx: &Context, refusal: SecurityRefusal, action: AuditAction, topic: &str) {
        ctx.gateway.refused(&ctx.local_metrics, refusal, &self.who, action, Some(topic));
    }

    pub(crate) fn username(&self) -> &str {
        self.who.username.as_deref().unwrap_or_default()
    }
}
