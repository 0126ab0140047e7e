//! The limits every door and session applies. They are read where they are used, so a
//! config update (`reconfigure`) that swaps them applies to what happens next: a lowered
//! limit refuses new connections, subscriptions, retained messages or queued deliveries,
//! and never drops what is already held. Only `max_queued_bytes_total`, which sizes the
//! byte budget, keeps the value the broker started with.

use std::time::Duration;

use alicia_config::AliciaConfig;

/// Payloads at least this large travel beside the router's commit log (see
/// `bus::large`) and get a read buffer of their own, charged to the byte budget.
pub(crate) const LARGE_PAYLOAD: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Limits {
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub max_pending_connections: usize,
    pub max_connect_bytes: usize,
    pub connect_timeout: Duration,
    pub write_timeout: Duration,
    pub max_packet_size: usize,
    pub max_inflight: u16,
    pub max_queued_messages: usize,
    pub max_queued_bytes: usize,
    pub max_queued_bytes_total: usize,
    pub max_client_id_length: usize,
    pub max_topic_length: usize,
    pub max_subscriptions_per_client: usize,
    pub max_filters_per_subscribe: usize,
    pub max_topic_aliases: u16,
    pub max_sessions: usize,
    pub max_session_expiry: u32,
    pub max_keep_alive: u16,
    pub max_retained_messages: usize,
    pub max_retained_bytes: usize,
    pub max_messages_per_second: u32,
    pub max_bytes_per_second: u64,
    pub max_connects_per_ip_per_minute: u32,
    pub rate_limit_loopback: bool,
}

impl Limits {
    pub(crate) fn from_config(config: &AliciaConfig) -> Limits {
        let l = &config.limits;
        Limits {
            max_connections: l.max_connections,
            max_connections_per_ip: l.max_connections_per_ip,
            max_pending_connections: l.max_pending_connections,
            max_connect_bytes: l.max_connect_bytes,
            connect_timeout: Duration::from_millis(config.mqtt.connect_timeout_ms),
            write_timeout: Duration::from_millis(config.mqtt.write_timeout_ms),
            max_packet_size: l.message_size_limit,
            max_inflight: l.max_inflight_messages.min(usize::from(u16::MAX)) as u16,
            max_queued_messages: l.max_queued_messages,
            max_queued_bytes: l.max_queued_bytes,
            max_queued_bytes_total: l.max_queued_bytes_total,
            max_client_id_length: l.max_client_id_length,
            max_topic_length: l.max_topic_length,
            max_subscriptions_per_client: l.max_subscriptions_per_client,
            max_filters_per_subscribe: l.max_filters_per_subscribe,
            max_topic_aliases: l.max_topic_aliases,
            max_sessions: l.max_sessions,
            max_session_expiry: l.max_session_expiry_secs,
            max_keep_alive: l.max_keep_alive_secs,
            max_retained_messages: l.max_retained_messages,
            max_retained_bytes: l.max_retained_bytes,
            max_messages_per_second: l.max_messages_per_second,
            max_bytes_per_second: l.max_bytes_per_second,
            max_connects_per_ip_per_minute: l.max_connects_per_ip_per_minute,
            rate_limit_loopback: l.rate_limit_loopback,
        }
    }

    /// `config`'s limits to put in force in place of `in_force`: the byte budget's size
    /// stays (it was allocated for it).
    pub(crate) fn replacing(in_force: &Limits, config: &AliciaConfig) -> Limits {
        Limits { max_queued_bytes_total: in_force.max_queued_bytes_total, ..Limits::from_config(config) }
    }

    /// A fresh connection's publish rate, a second's worth as its burst; `None` when
    /// neither rate is limited.
    pub(crate) fn client_rate(&self) -> Option<alicia_ratelimit::ClientRate> {
        (self.max_messages_per_second > 0 || self.max_bytes_per_second > 0).then(|| {
            alicia_ratelimit::ClientRate::per_second(
                self.max_messages_per_second.into(),
                0,
                self.max_bytes_per_second,
                0,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replacement_keeps_the_byte_budget_it_started_with() {
        let config = AliciaConfig::default();
        let in_force = Limits::from_config(&config);
        let mut next = config.clone();
        next.limits.max_queued_bytes_total /= 2;
        next.limits.max_messages_per_second = 7;
        let replaced = Limits::replacing(&in_force, &next);
        assert_eq!(replaced.max_queued_bytes_total, in_force.max_queued_bytes_total);
        assert_eq!(replaced.max_messages_per_second, 7);
    }
}
