//! SUBSCRIBE and UNSUBSCRIBE.
//!
//! Each filter gets its own answer: the granted QoS, or the refusal of the client's
//! version (3.1.1: 0x80; 5: 0x8F invalid filter, 0x97 a limit). A new subscription
//! gets the matching retained messages after the SUBACK, as its Retain Handling asks
//! (0: always, 1: only if it is new, 2: never; never for a shared subscription), each at
//! the lower of its own QoS and the subscription's.

use std::time::Instant;

use rumqttd::protocol::{
    Packet, QoS, RetainForwardRule, SubAck, Subscribe, SubscribeProperties, SubscribeReasonCode, UnsubAck,
    UnsubAckReason, Unsubscribe,
};

use super::connection::{CloseReason, Connection};
use super::{Grant, Queued, Session, Subscription};
use crate::bus::{Control, Entry};
use crate::codec::MqttVersion;
use crate::metrics::{Refusal, SecurityRefusal};
use crate::node::Node;
use crate::security;
use crate::topic::{parse_filter, TopicError};
use alicia_audit::AuditAction;

pub(super) fn subscribe(
    node: &Node,
    s: &mut Session,
    conn: &Connection,
    subscribe: Subscribe,
    properties: Option<SubscribeProperties>,
    now: Instant,
) -> Result<(), CloseReason> {
    let id = match properties.and_then(|p| p.id) {
        Some(0) => return Err(CloseReason::ProtocolError("subscription identifier 0")),
        Some(id) => Some(id as u32),
        None => None,
    };
    let limits = node.ctx.limits();
    let version = conn.version;
    let mut codes = Vec::with_capacity(subscribe.filters.len());
    let mut retained = Vec::new();
    for (i, filter) in subscribe.filters.into_iter().enumerate() {
        let parsed = match parse_filter(&filter.path, limits.max_topic_length) {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::debug!(filter = filter.path, error = %e, "refused topic filter");
                conn.metrics.refused(Refusal::TopicFilterInvalid);
                codes.push(refused(version, e));
                continue;
            }
        };
        if parsed.is_shared() && filter.nolocal {
            return Err(CloseReason::ProtocolError("no-local on a shared subscription"));
        }
        if !security::may_subscribe(&s.rules, parsed.filter) {
            s.refused(node, SecurityRefusal::SubscribeDenied, AuditAction::Subscribe, Some(&filter.path));
            codes.push(not_authorized(version));
            continue;
        }
        let existing = s.subscriptions.get(&filter.path).copied();
        if i >= limits.max_filters_per_subscribe
            || (existing.is_none() && s.subscriptions.len() >= limits.max_subscriptions_per_client)
        {
            conn.metrics.refused(Refusal::SubscriptionLimit);
            codes.push(quota(version));
            continue;
        }
        let subscription = Subscription {
            qos: filter.qos as u8,
            no_local: filter.nolocal,
            retain_as_published: filter.preserve_retain,
            retain_handling: match filter.retain_forward_rule {
                RetainForwardRule::OnEverySubscribe => 0,
                RetainForwardRule::OnNewSubscribe => 1,
                RetainForwardRule::Never => 2,
            },
            id,
        };
        if s.subscriptions.insert(filter.path.clone(), subscription).is_none() {
            node.ctx.metrics.subscriptions.increment(1.0);
        }
        if parsed.is_shared() {
            if existing.is_none() {
                node.append(Entry::Control(Control::ShareJoin { share: filter.path.clone(), member: s.key }));
            }
        } else {
            node.trie.borrow_mut().insert(parsed.filter, s.key.slot, Grant::from(subscription));
            let wanted = match subscription.retain_handling {
                0 => true,
                1 => existing.is_none(),
                _ => false,
            };
            if wanted {
                for routed in node.retained.borrow_mut().matching(parsed.filter, now) {
                    if !security::may_read(&s.rules, routed.message.topic_str()) {
                        continue;
                    }
                    let qos = routed.message.qos.min(subscription.qos);
                    let subscription_ids = id.into_iter().collect();
                    retained.push(Queued {
                        routed,
                        qos,
                        retain: true,
                        subscription_ids,
                        from_retained_store: true,
                        seq: None,
                        state_record: false,
                    });
                }
            }
        }
        codes.push(granted(filter.qos));
    }
    s.refresh_no_local();
    if s.stored {
        s.persist(node, None);
    }
    conn.send(Packet::SubAck(SubAck { pkid: subscribe.pkid, return_codes: codes }, None));
    for queued in retained {
        s.deliver(node, queued, now);
    }
    Ok(())
}

/// A stored session's subscription back in the node's routing (at start-up).
pub(crate) fn restore(node: &Node, s: &mut Session, filter: String, subscription: Subscription) {
    let Ok(parsed) = parse_filter(&filter, usize::MAX) else {
        tracing::warn!(client_id = &*s.client_id, filter, "a stored subscription's filter is not valid: dropped");
        return;
    };
    if parsed.is_shared() {
        node.append(Entry::Control(Control::ShareJoin { share: filter.clone(), member: s.key }));
    } else {
        node.trie.borrow_mut().insert(parsed.filter, s.key.slot, Grant::from(subscription));
    }
    if s.subscriptions.insert(filter, subscription).is_none() {
        node.ctx.metrics.subscriptions.increment(1.0);
    }
}

pub(super) fn unsubscribe(
    node: &Node,
    s: &mut Session,
    conn: &Connection,
    unsubscribe: Unsubscribe,
) -> Result<(), CloseReason> {
    let mut reasons = Vec::with_capacity(unsubscribe.filters.len());
    for path in &unsubscribe.filters {
        let reason = match parse_filter(path, usize::MAX) {
            Err(_) => UnsubAckReason::TopicFilterInvalid,
            Ok(parsed) => match s.subscriptions.remove(path) {
                None => UnsubAckReason::NoSubscriptionExisted,
                Some(_) => {
                    node.ctx.metrics.subscriptions.decrement(1.0);
                    if parsed.is_shared() {
                        node.append(Entry::Control(Control::ShareLeave { share: path.clone(), member: s.key }));
                    } else {
                        node.trie.borrow_mut().remove(parsed.filter, s.key.slot);
                    }
                    UnsubAckReason::Success
                }
            },
        };
        reasons.push(reason);
    }
    s.refresh_no_local();
    if s.stored {
        s.persist(node, None);
    }
    conn.send(Packet::UnsubAck(UnsubAck { pkid: unsubscribe.pkid, reasons }, None));
    Ok(())
}

fn granted(qos: QoS) -> SubscribeReasonCode {
    match qos {
        QoS::AtMostOnce => SubscribeReasonCode::QoS0,
        QoS::AtLeastOnce => SubscribeReasonCode::QoS1,
        QoS::ExactlyOnce => SubscribeReasonCode::QoS2,
    }
}

fn refused(version: MqttVersion, _why: TopicError) -> SubscribeReasonCode {
    match version {
        MqttVersion::V311 => SubscribeReasonCode::Failure,
        MqttVersion::V5 => SubscribeReasonCode::TopicFilterInvalid,
    }
}

fn not_authorized(version: MqttVersion) -> SubscribeReasonCode {
    match version {
        MqttVersion::V311 => SubscribeReasonCode::Failure,
        MqttVersion::V5 => SubscribeReasonCode::NotAuthorized,
    }
}

fn quota(version: MqttVersion) -> SubscribeReasonCode {
    match version {
        MqttVersion::V311 => SubscribeReasonCode::Failure,
        MqttVersion::V5 => SubscribeReasonCode::QuotaExceeded,
    }
}
