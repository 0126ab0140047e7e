//! Reason and return codes by name, and a one line description of any packet a broker
//! sends, for reports: `DISCONNECT 0x90 (topic name invalid) "bad topic"`.

use super::{prop, Incoming, PropValue, Version};

impl Incoming {
    /// One line for a report: `CONNACK 0x85 (client identifier not valid)`.
    pub fn describe(&self, version: Version) -> String {
        let reason = |code: u8| reason_name(version, code).map(|n| format!(" ({n})")).unwrap_or_default();
        match self {
            Incoming::ConnAck { code, properties, .. } => {
                let name = match version {
                    Version::V311 => connack_v3_name(*code).map(|n| format!(" ({n})")).unwrap_or_default(),
                    Version::V5 => reason(*code),
                };
                let why = properties
                    .iter()
                    .find_map(|(id, v)| match (id, v) {
                        (&prop::REASON_STRING, PropValue::Str(s)) => Some(format!(" \"{}\"", short(s))),
                        _ => None,
                    })
                    .unwrap_or_default();
                format!("CONNACK 0x{code:02x}{name}{why}")
            }
            Incoming::Publish(d) => format!(
                "PUBLISH qos {} to `{}` ({} B)",
                d.qos,
                short(&String::from_utf8_lossy(&d.topic)),
                d.payload.len()
            ),
            Incoming::PubAck { code, .. } => format!("PUBACK 0x{code:02x}{}", reason(*code)),
            Incoming::SubAck { codes, .. } => format!("SUBACK {}", code_counts(version, codes)),
            Incoming::UnsubAck { codes, .. } if codes.is_empty() => "UNSUBACK".into(),
            Incoming::UnsubAck { codes, .. } => format!("UNSUBACK {}", code_counts(version, codes)),
            Incoming::PingResp => "PINGRESP".into(),
            Incoming::Disconnect { code, reason: text } => {
                let text = text.as_ref().map(|t| format!(" \"{}\"", short(t))).unwrap_or_default();
                format!("DISCONNECT 0x{code:02x}{}{text}", reason(*code))
            }
            Incoming::Other { first_byte, len } => format!("packet type {} ({len} B)", first_byte >> 4),
        }
    }
}

fn short(s: &str) -> String {
    const MAX: usize = 80;
    if s.chars().count() <= MAX {
        s.to_string()
    } else {
        format!("{}… ({} chars)", s.chars().take(MAX).collect::<String>(), s.chars().count())
    }
}

/// `0x01` or, for many codes, a count per code: `10000 codes: 9990 × 0x01, 10 × 0x80`.
pub fn code_counts(version: Version, codes: &[u8]) -> String {
    let mut counts: std::collections::BTreeMap<u8, usize> = Default::default();
    codes.iter().for_each(|c| *counts.entry(*c).or_default() += 1);
    let name = |c: u8| reason_name(version, c).map(|n| format!(" ({n})")).unwrap_or_default();
    if codes.len() == 1 {
        return format!("0x{:02x}{}", codes[0], name(codes[0]));
    }
    let parts: Vec<String> = counts.iter().map(|(c, n)| format!("{n} × 0x{c:02x}{}", name(*c))).collect();
    format!("{} codes: {}", codes.len(), parts.join(", "))
}

fn connack_v3_name(code: u8) -> Option<&'static str> {
    Some(match code {
        1 => "unacceptable protocol version",
        2 => "identifier rejected",
        3 => "server unavailable",
        4 => "bad user name or password",
        5 => "not authorized",
        _ => return None,
    })
}

/// Names of the reason codes a broker answers hostile input with (MQTT 5 §2.4; 3.1.1
/// knows only 0x80 in a SUBACK).
pub fn reason_name(version: Version, code: u8) -> Option<&'static str> {
    if version == Version::V311 {
        return (code == 0x80).then_some("failure");
    }
    Some(match code {
        0x00 => return None,
        0x01 | 0x02 => return None,
        0x04 => "disconnect with will",
        0x10 => "no matching subscribers",
        0x80 => "unspecified error",
        0x81 => "malformed packet",
        0x82 => "protocol error",
        0x83 => "implementation specific error",
        0x84 => "unsupported protocol version",
        0x85 => "client identifier not valid",
        0x87 => "not authorized",
        0x88 => "server unavailable",
        0x89 => "server busy",
        0x8b => "server shutting down",
        0x8d => "keep alive timeout",
        0x8e => "session taken over",
        0x8f => "topic filter invalid",
        0x90 => "topic name invalid",
        0x93 => "receive maximum exceeded",
        0x94 => "topic alias invalid",
        0x95 => "packet too large",
        0x96 => "message rate too high",
        0x97 => "quota exceeded",
        0x98 => "administrative action",
        0x99 => "payload format invalid",
        0x9a => "retain not supported",
        0x9b => "qos not supported",
        0x9e => "shared subscriptions not supported",
        0x9f => "connection rate exceeded",
        0xa1 => "subscription identifiers not supported",
        0xa2 => "wildcard subscriptions not supported",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::decode;

    #[test]
    fn describes_refusals_for_reports() {
        let v5_disconnect = [0xe0, 9, 0x90, 7, 0x1f, 0, 4, b'b', b'a', b'd', b'!'];
        let (d, _) = decode(&v5_disconnect, Version::V5).unwrap().unwrap();
        assert_eq!(d.describe(Version::V5), "DISCONNECT 0x90 (topic name invalid) \"bad!\"");
        let (c, _) = decode(&[0x20, 2, 0, 3], Version::V311).unwrap().unwrap();
        assert_eq!(c.describe(Version::V311), "CONNACK 0x03 (server unavailable)");
        let mut suback = vec![0x90, 7, 0, 1, 0];
        suback.extend_from_slice(&[1, 1, 0x87, 1]);
        let (s, _) = decode(&suback, Version::V5).unwrap().unwrap();
        assert_eq!(s.describe(Version::V5), "SUBACK 4 codes: 3 × 0x01, 1 × 0x87 (not authorized)");
        assert!(decode(&[0x30, 0xff, 0xff, 0xff, 0xff, 1], Version::V311).is_err());
    }
}
