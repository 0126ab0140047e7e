//! One audit line: who was refused what, where, when and why.

use std::net::SocketAddr;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

/// The most bytes kept of any client-supplied field. MQTT lets a client id, username or
/// topic be 64 KiB; a queue of records that size would not be bounded in any useful
/// sense, and an auditor needs the start of a hostile string, not all of it.
pub const MAX_FIELD_BYTES: usize = 1024;

/// What the refused peer was trying to do. A closed set: it is a column auditors filter
/// on, so a new kind of door gets a new variant here rather than a free string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// An MQTT CONNECT (credentials, certificate, connection-rate limits).
    Connect,
    /// An MQTT SUBSCRIBE.
    Subscribe,
    /// An MQTT PUBLISH (or a will).
    Publish,
    /// A delivery to a subscriber that was held back (e.g. ACL read denied per message).
    Deliver,
    /// An HTTP API request.
    Http,
    /// A Wyoming protocol event.
    Wyoming,
    /// An API or device token (expired, bad signature, replayed).
    Token,
}

impl AuditAction {
    pub const ALL: &'static [AuditAction] = &[
        AuditAction::Connect,
        AuditAction::Subscribe,
        AuditAction::Publish,
        AuditAction::Deliver,
        AuditAction::Http,
        AuditAction::Wyoming,
        AuditAction::Token,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Connect => "connect",
            AuditAction::Subscribe => "subscribe",
            AuditAction::Publish => "publish",
            AuditAction::Deliver => "deliver",
            AuditAction::Http => "http",
            AuditAction::Wyoming => "wyoming",
            AuditAction::Token => "token",
        }
    }
}

/// One security refusal. Built on the refusing thread with [`AuditRecord::new`] and the
/// `with_*` setters (which cut client strings to [`MAX_FIELD_BYTES`]), then handed to
/// [`crate::AuditLog::record`]; it is serialised on the writer thread.
///
/// The line has every key, in this order, `null` where a field is unknown:
/// `{"time":"2026-12-03T12:44:11.123Z","listener":"mqtt","peer":"192.0.2.7:51234",
/// "client_id":"kitchen","username":"bob","action":"connect","topic":null,
/// "reason":"wrong_password","detail":null}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    #[serde(serialize_with = "rfc3339_millis")]
    time: DateTime<Utc>,
    listener: &'static str,
    peer: SocketAddr,
    client_id: Option<String>,
    username: Option<String>,
    action: AuditAction,
    topic: Option<String>,
    reason: &'static str,
    detail: Option<String>,
}

impl AuditRecord {
    /// A refusal happening now. `listener` and `reason` are static labels (the same
    /// strings the refusal metrics use), so nothing a client sends can invent a new one.
    pub fn new(listener: &'static str, peer: SocketAddr, action: AuditAction, reason: &'static str) -> Self {
        AuditRecord {
            time: Utc::now(),
            listener,
            peer,
            client_id: None,
            username: None,
            action,
            topic: None,
            reason,
            detail: None,
        }
    }

    /// The same record stamped with another time (replays, tests).
    pub fn at(mut self, time: DateTime<Utc>) -> Self {
        self.time = time;
        self
    }

    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(capped(client_id.into()));
        self
    }

    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(capped(username.into()));
        self
    }

    pub fn with_topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(capped(topic.into()));
        self
    }

    /// A field that arrived as raw bytes (an MQTT v3 topic need not be valid UTF-8 when it
    /// is refused): invalid sequences become U+FFFD, so the line stays valid JSON.
    pub fn with_topic_bytes(self, topic: &[u8]) -> Self {
        self.with_topic(lossy(topic))
    }

    pub fn with_username_bytes(self, username: &[u8]) -> Self {
        self.with_username(lossy(username))
    }

    pub fn with_client_id_bytes(self, client_id: &[u8]) -> Self {
        self.with_client_id(lossy(client_id))
    }

    /// Free text for a human (e.g. the certificate serial, the back-off imposed).
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(capped(detail.into()));
        self
    }

    pub fn time(&self) -> DateTime<Utc> {
        self.time
    }

    pub fn listener(&self) -> &'static str {
        self.listener
    }

    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn action(&self) -> AuditAction {
        self.action
    }

    pub fn reason(&self) -> &'static str {
        self.reason
    }

    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    pub fn username(&self) -> Option<&str> {
        self.username.as_deref()
    }

    pub fn topic(&self) -> Option<&str> {
        self.topic.as_deref()
    }

    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// Appends the record as one JSON line, `\n` included, to `out`.
    pub fn write_line(&self, out: &mut Vec<u8>) {
        let start = out.len();
        // Serialising into a Vec cannot fail: every field is a string, number or null.
        if serde_json::to_writer(&mut *out, self).is_err() {
            out.truncate(start);
            return;
        }
        escape_unicode_line_breaks(out, start);
        out.push(b'\n');
    }
}

/// Cut to at most [`MAX_FIELD_BYTES`] on a character boundary, marking the cut with `…`
/// so a reader knows the value was longer.
fn capped(mut s: String) -> String {
    if s.len() > MAX_FIELD_BYTES {
        let mut end = MAX_FIELD_BYTES - '…'.len_utf8();
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

fn lossy(bytes: &[u8]) -> String {
    // Only the part that survives the cap is decoded, so a 64 KiB topic costs 1 KiB here.
    let head = &bytes[..bytes.len().min(MAX_FIELD_BYTES + 4)];
    let mut s = String::from_utf8_lossy(head).into_owned();
    if head.len() < bytes.len() && s.len() <= MAX_FIELD_BYTES {
        s.push('…');
    }
    capped(s)
}

fn rfc3339_millis<S: Serializer>(time: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&time.to_rfc3339_opts(SecondsFormat::Millis, true))
}

/// serde_json escapes every control character, so `\n` and `\r` never reach the file raw,
/// but it leaves U+0085, U+2028 and U+2029 as they are — valid JSON, yet line breaks to
/// many line-splitting readers (Python's `splitlines`, some log shippers). Escaping them
/// keeps "one record, one line" true for every reader. They can only occur inside string
/// values, where `\uXXXX` is equally valid.
fn escape_unicode_line_breaks(out: &mut Vec<u8>, start: usize) {
    // A cheap look for the lead bytes first: almost every line has none of them.
    if !out[start..].windows(2).any(|w| matches!(w, [0xC2, 0x85] | [0xE2, 0x80])) {
        return;
    }
    let line = out.split_off(start);
    let mut i = 0;
    while i < line.len() {
        match &line[i..] {
            [0xC2, 0x85, ..] => {
                out.extend_from_slice(b"\\u0085");
                i += 2;
            }
            [0xE2, 0x80, 0xA8, ..] => {
                out.extend_from_slice(b"\\u2028");
                i += 3;
            }
            [0xE2, 0x80, 0xA9, ..] => {
                out.extend_from_slice(b"\\u2029");
                i += 3;
            }
            [b, ..] => {
                out.push(*b);
                i += 1;
            }
            [] => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "192.0.2.7:51234".parse().unwrap()
    }

    fn line(record: &AuditRecord) -> String {
        let mut out = Vec::new();
        record.write_line(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_record_is_one_json_line_with_every_key() {
        let time = DateTime::parse_from_rfc3339("2026-12-03T12:44:11.123456Z").unwrap().with_timezone(&Utc);
        let record = AuditRecord::new("mqtt", peer(), AuditAction::Connect, "wrong_password")
            .at(time)
            .with_client_id("kitchen")
            .with_username("bob");
        let text = line(&record);
        assert_eq!(
            text,
            "{\"time\":\"2026-12-03T12:44:11.123Z\",\"listener\":\"mqtt\",\"peer\":\"192.0.2.7:51234\",\
             \"client_id\":\"kitchen\",\"username\":\"bob\",\"action\":\"connect\",\"topic\":null,\
             \"reason\":\"wrong_password\",\"detail\":null}\n"
        );
    }

    #[test]
    fn hostile_strings_stay_on_one_line_and_round_trip() {
        let nasty = "a\nb\r\"c\\d\u{0}\u{1b}[31m\u{85}e\u{2028}f\u{2029}g\u{feff}";
        let record = AuditRecord::new("websocket", peer(), AuditAction::Publish, "publish_denied")
            .with_client_id(nasty)
            .with_topic_bytes(b"home/\xff\xfe/x\n")
            .with_detail("tab\there");
        let text = line(&record);
        assert_eq!(text.matches('\n').count(), 1);
        assert!(text.ends_with('\n'));
        for sep in ['\r', '\u{85}', '\u{2028}', '\u{2029}'] {
            assert!(!text.contains(sep), "raw {sep:?} in {text}");
        }
        let value: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(value["client_id"], nasty);
        assert_eq!(value["topic"], "home/\u{fffd}\u{fffd}/x\n");
        assert_eq!(value["detail"], "tab\there");
        assert_eq!(value["action"], "publish");
    }

    #[test]
    fn long_fields_are_cut_on_a_char_boundary() {
        let long = "é".repeat(3000);
        let record = AuditRecord::new("mqtt", peer(), AuditAction::Connect, "unknown_user")
            .with_username(long.clone())
            .with_client_id_bytes(&[b'x'; 70_000]);
        let username = record.username().unwrap();
        assert!(username.len() <= MAX_FIELD_BYTES);
        assert!(username.ends_with('…'));
        assert!(long.starts_with(username.trim_end_matches('…')));
        let client_id = record.client_id().unwrap();
        assert!(client_id.len() <= MAX_FIELD_BYTES && client_id.ends_with('…'));
        let short = AuditRecord::new("mqtt", peer(), AuditAction::Connect, "x").with_client_id_bytes(b"ok");
        assert_eq!(short.client_id(), Some("ok"));
    }

    #[test]
    fn actions_serialise_as_their_label() {
        for action in AuditAction::ALL {
            assert_eq!(serde_json::to_value(action).unwrap(), action.as_str());
        }
    }
}
