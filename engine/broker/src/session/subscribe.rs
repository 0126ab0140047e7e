//! SUBSCRIBE screening. rumqttd's router accepts filters with broken wildcards and
//! drops the whole connection for a `$`-prefixed filter (so `mosquitto_sub -t '$SYS/#'`
//! would be disconnected). The front door answers such filters itself with the SUBACK
//! failure code of the client's MQTT version (0x80; v5: 0x8F topic filter invalid) and
//! passes only the acceptable ones on. The router's SUBACK then lacks the refused
//! positions; the pump puts them back before the client sees it.

use std::collections::HashMap;

use rumqttd::protocol::{valid_filter, SubAck, Subscribe, SubscribeReasonCode};

use crate::codec::MqttVersion;

/// What to do with one SUBSCRIBE.
pub(super) enum Screened {
    /// Every filter is fine: forward unchanged.
    AllAccepted(Subscribe),
    /// Some refused: forward the rest; remember where the refused ones were.
    Partly { forward: Subscribe, refused: Vec<usize>, total: usize },
    /// None acceptable: answer now.
    AllRefused(SubAck),
}

pub(super) fn screen(subscribe: Subscribe, version: MqttVersion) -> Screened {
    if subscribe.filters.iter().all(|f| acceptable(&f.path)) {
        return Screened::AllAccepted(subscribe);
    }
    let total = subscribe.filters.len();
    let (mut kept, mut refused) = (Vec::with_capacity(total), Vec::new());
    for (i, filter) in subscribe.filters.into_iter().enumerate() {
        if acceptable(&filter.path) {
            kept.push(filter);
        } else {
            tracing::debug!(filter = filter.path, "refused topic filter");
            refused.push(i);
        }
    }
    if kept.is_empty() {
        let return_codes = vec![failure(version); total];
        return Screened::AllRefused(SubAck { pkid: subscribe.pkid, return_codes });
    }
    Screened::Partly { forward: Subscribe { pkid: subscribe.pkid, filters: kept }, refused, total }
}

/// Valid MQTT filter syntax, and not a `$` topic other than a well-formed `$share`.
fn acceptable(path: &str) -> bool {
    match path.strip_prefix("$share/") {
        Some(rest) => match rest.split_once('/') {
            Some((group, filter)) => {
                !group.is_empty() && !group.contains(['+', '#']) && valid_filter(filter) && !filter.starts_with('$')
            }
            None => false,
        },
        None => !path.starts_with('$') && valid_filter(path),
    }
}

fn failure(version: MqttVersion) -> SubscribeReasonCode {
    match version {
        MqttVersion::V311 => SubscribeReasonCode::Failure,
        MqttVersion::V5 => SubscribeReasonCode::TopicFilterInvalid,
    }
}

/// Refused positions of SUBSCRIBEs in flight, by packet id.
#[derive(Default)]
pub(super) struct SubAckFixups(HashMap<u16, (Vec<usize>, usize)>);

impl SubAckFixups {
    pub(super) fn remember(&mut self, pkid: u16, refused: Vec<usize>, total: usize) {
        self.0.insert(pkid, (refused, total));
    }

    /// Puts the refused positions back into the router's SUBACK.
    pub(super) fn apply(&mut self, suback: &mut SubAck, version: MqttVersion) {
        let Some((refused, total)) = self.0.remove(&suback.pkid) else { return };
        let mut granted = std::mem::take(&mut suback.return_codes).into_iter();
        suback.return_codes = (0..total)
            .map(|i| if refused.contains(&i) { failure(version) } else { granted.next().unwrap_or(failure(version)) })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttd::protocol::{Filter, QoS, RetainForwardRule};

    fn sub(paths: &[&str]) -> Subscribe {
        let filters = paths
            .iter()
            .map(|p| Filter {
                path: p.to_string(),
                qos: QoS::AtLeastOnce,
                nolocal: false,
                preserve_retain: false,
                retain_forward_rule: RetainForwardRule::OnEverySubscribe,
            })
            .collect();
        Subscribe { pkid: 7, filters }
    }

    #[test]
    fn acceptable_filters() {
        for ok in ["a", "a/+/b", "#", "a/#", "+", "$share/g/a/#"] {
            assert!(acceptable(ok), "{ok}");
        }
        for bad in ["", "a/#/b", "a+", "$SYS/#", "$share/g", "$share//a", "$share/g+/a", "$share/g/$SYS/x"] {
            assert!(!acceptable(bad), "{bad}");
        }
    }

    #[test]
    fn mixed_subscribe_is_split_and_the_suback_restored() {
        let Screened::Partly { forward, refused, total } = screen(sub(&["a", "$SYS/#", "b/#"]), MqttVersion::V311)
        else {
            panic!("expected a partial refusal")
        };
        assert_eq!(forward.filters.len(), 2);
        let mut fixups = SubAckFixups::default();
        fixups.remember(7, refused, total);
        let mut suback = SubAck { pkid: 7, return_codes: vec![SubscribeReasonCode::QoS1, SubscribeReasonCode::QoS0] };
        fixups.apply(&mut suback, MqttVersion::V311);
        assert_eq!(
            suback.return_codes,
            [SubscribeReasonCode::QoS1, SubscribeReasonCode::Failure, SubscribeReasonCode::QoS0]
        );
    }

    #[test]
    fn all_refused_is_answered_with_the_version_code() {
        let Screened::AllRefused(ack) = screen(sub(&["$SYS/#"]), MqttVersion::V5) else { panic!() };
        assert_eq!(ack.return_codes, [SubscribeReasonCode::TopicFilterInvalid]);
    }
}
