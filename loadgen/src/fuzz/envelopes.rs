//! JSON envelopes on `alicia/...` request topics, which the engine's gatekeeper parses
//! and answers with an error event when they are wrong: valid ones, and ones broken
//! field by field, of the wrong types, truncated, nested deep, with numbers and strings
//! at the edges of what a parser holds, or not JSON at all.

use alicia_envelope::topics;
use serde_json::{json, Map, Value};

use super::case::Case;
use super::gen::Gen;
use super::mqtt_cases::{ending, level, send};
use super::mqtt_packets::{connect, plain_publish, plain_subscribe};

const REQUEST_TOPICS: &[&str] = &[
    topics::SYSTEM_DISCOVERY_REGISTER,
    topics::SYSTEM_DISCOVERY_UNREGISTER,
    topics::SYSTEM_DISCOVERY_HEARTBEAT,
    topics::SYSTEM_DISCOVERY_CAPABILITIES,
    topics::SYSTEM_HEALTH_CHECK,
    topics::SYSTEM_CONFIG_UPDATE,
    topics::SYSTEM_CONFIG_REQUEST,
    topics::SYSTEM_REGISTRY_REGISTER,
    topics::SYSTEM_SECURITY_AUTH,
    topics::VOICE_STT_REQUEST,
    topics::VOICE_AI_REQUEST,
    topics::VOICE_TTS_REQUEST,
    topics::VOICE_COMMAND_EXECUTE,
    topics::INTEGRATION_API_REQUEST,
    topics::INTEGRATION_HA_COMMAND,
    topics::DEVICES_SENSORS_TELEMETRY,
    topics::MONITORING_METRICS,
    // legacy spellings the shipped config maps to canonical topics
    "alicia/voice/stt/result",
    "alicia/ai/request",
    "alicia/health/heartbeat/fz",
];

/// Marks a JSON value that is replaced by raw text after serialising, for what no
/// `serde_json::Value` can hold (1e999999, NaN, 100,000 nested arrays).
const RAW: &str = "@@raw@@";

pub(crate) fn request_topic(gen: &mut Gen) -> String {
    if gen.chance(85) {
        return gen.pick(REQUEST_TOPICS).to_string();
    }
    match gen.below(6) {
        0 => "alicia/".into(),
        1 => "alicia//x".into(),
        2 => topics::MONITORING_ALERTS.into(),
        3 => topics::VOICE_STT_ERROR.into(),
        4 => format!("alicia/devices/{}/command", gen.word(8)),
        _ => format!("alicia/{}", gen.unicode()),
    }
}

pub(crate) fn uuid_v4(gen: &mut Gen) -> String {
    let mut b = gen.bytes(16);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = super::case::hex(&b);
    format!("{}-{}-{}-{}-{}", &h[..8], &h[8..12], &h[12..16], &h[16..20], &h[20..])
}

/// Any JSON, at most `depth` levels, kept small.
pub(crate) fn data_value(gen: &mut Gen, depth: usize) -> Value {
    match gen.below(if depth == 0 { 5 } else { 7 }) {
        0 => Value::Null,
        1 => Value::Bool(gen.chance(50)),
        2 => json!(gen.u64() >> gen.below(64)),
        3 => json!(f64::from_bits(gen.u64() & 0x7fef_ffff_ffff_ffff)),
        4 => Value::String(gen.unicode()),
        5 => Value::Array((0..gen.below(5)).map(|_| data_value(gen, depth - 1)).collect()),
        _ => Value::Object((0..gen.below(5)).map(|_| (gen.word(8), data_value(gen, depth - 1))).collect()),
    }
}

/// The time this process first made an envelope: valid envelopes carry it so they are
/// fresh (within their ttl), and a case's bytes stay the same however often it is made
/// in one run. A case replayed later (`--show-case`) differs in this field only.
fn run_start() -> &'static str {
    static START: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    START.get_or_init(|| chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// A well-formed envelope around `data`.
pub(crate) fn valid(gen: &mut Gen, data: Value) -> Value {
    let mut env = json!({
        "message_id": uuid_v4(gen),
        "timestamp": run_start(),
        "source": format!("fz-{}", gen.word(6)),
        "destination": *gen.pick(&["broadcast", "alicia", "capability:stt", "device_id:kitchen_lights", "stt_service"]),
        "message_type": *gen.pick(&["request", "response", "event", "command", "heartbeat"]),
        "priority": *gen.pick(&["low", "normal", "high", "critical"]),
        // A day: envelopes stamped at the run's start stay fresh through a long run.
        "ttl": 86_400,
        "payload": {"data": data, "metadata": {}},
    });
    if gen.chance(20) {
        env["security"] = json!({"signature": gen.word(20), "encryption": "none", "key_id": "k1"});
    }
    if gen.chance(20) {
        env["routing"] = json!({"hops": gen.below(3), "max_hops": 10, "route": ["fz"]});
    }
    env
}

const FIELDS: &[&str] = &[
    "message_id",
    "timestamp",
    "source",
    "destination",
    "message_type",
    "priority",
    "ttl",
    "payload",
    "security",
    "routing",
];

/// A value of the wrong type for any field.
fn wrong_type(gen: &mut Gen) -> Value {
    match gen.below(7) {
        0 => Value::Null,
        1 => json!(true),
        2 => json!(-1),
        3 => json!([1, "two", null]),
        4 => json!({"nested": {"deeper": []}}),
        5 => json!(""),
        _ => json!(1.5e300),
    }
}

/// A value of the right type that the field's rules refuse, or that sits on an edge.
fn odd_value(gen: &mut Gen, field: &str) -> Value {
    match field {
        "message_id" => json!(*gen.pick(&[
            "",
            "nope",
            "00000000-0000-0000-0000-000000000000",
            "6F1C4B7E-2A41-4C1E-9D59-3B6A8F0E2C11",
            "6f1c4b7e-2a41-1c1e-9d59-3b6a8f0e2c11",
            "6f1c4b7e2a414c1e9d593b6a8f0e2c11",
        ])),
        "timestamp" => json!(*gen.pick(&[
            "",
            "2026-13-45T25:61:61Z",
            "1970-01-01T00:00:00Z",
            "9999-12-31T23:59:59Z",
            "2026-11-23T10:00:00",
            "2026-11-23T10:00:60Z",
            "2026-11-23T10:00:00+14:00",
            "+275760-09-13T00:00:00Z",
        ])),
        "ttl" => gen.pick(&[json!(0), json!(-1), json!(1.5), json!("300"), json!(u64::MAX), json!(1e30)]).clone(),
        "routing" => gen
            .pick(&[
                json!({"hops": 11, "max_hops": 10}),
                json!({"hops": 0, "max_hops": 0}),
                json!({"hops": -1}),
                json!({"route": vec!["fz"; 10_000]}),
            ])
            .clone(),
        "priority" | "message_type" => json!(*gen.pick(&["urgent", "REQUEST", "", "request\0"])),
        "destination" => json!(*gen.pick(&["capability:", "device_id:", "", "broadcast/+"])),
        _ => {
            let len = gen.len_up_to(600_000);
            json!("s".repeat(len))
        }
    }
}

/// Raw JSON text no `Value` holds.
fn raw_edge(gen: &mut Gen) -> String {
    match gen.below(8) {
        0 => "1e999999".into(),
        1 => "-0".into(),
        2 => "123456789012345678901234567890123456789012345678901234567890".into(),
        3 => "NaN".into(),
        4 => "0x10".into(),
        5 => "\"\\ud800\"".into(),
        6 => "\"\\u0000\"".into(),
        _ => nested(gen),
    }
}

/// Arrays (or objects) nested `depth` deep; 128 is serde_json's recursion limit.
fn nested(gen: &mut Gen) -> String {
    let depth = *gen.pick(&[100usize, 127, 128, 129, 1_000, 100_000]);
    if gen.chance(50) {
        format!("{}{}", "[".repeat(depth), "]".repeat(depth))
    } else {
        format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth))
    }
}

/// An envelope's bytes around `data` and what is odd about them ("valid" when nothing).
pub(crate) fn body(gen: &mut Gen, data: Value) -> (Vec<u8>, String) {
    let mut env = valid(gen, data);
    let map: &mut Map<String, Value> = env.as_object_mut().expect("an object");
    let field = *gen.pick(FIELDS);
    let (raw, label) = match gen.weighted(&[30, 10, 15, 15, 10, 8, 4, 3, 5]) {
        0 => (None, "valid".to_string()),
        1 => {
            map.remove(field);
            (None, format!("no {field}"))
        }
        2 => {
            map.insert(field.into(), wrong_type(gen));
            (None, format!("{field} of the wrong type"))
        }
        3 => {
            map.insert(field.into(), odd_value(gen, field));
            (None, format!("odd {field}"))
        }
        4 => {
            map.insert(field.into(), json!(RAW));
            (Some(raw_edge(gen)), format!("raw edge in {field}"))
        }
        5 => (None, "truncated".to_string()),
        6 => {
            map.insert("payload".into(), json!({"data": RAW}));
            (Some(nested(gen)), "deeply nested data".to_string())
        }
        7 => {
            let len = gen.len_up_to(1_100_000);
            map.insert("payload".into(), json!({"data": "d".repeat(len)}));
            (None, format!("{len}-byte string"))
        }
        _ => return not_json(gen),
    };
    let mut text = serde_json::to_string(&env).expect("a Value serialises");
    if let Some(raw) = raw {
        text = text.replacen(&format!("\"{RAW}\""), &raw, 1);
    }
    if label == "truncated" {
        let cut = gen.below(text.len());
        text.truncate(text.floor_char_boundary(cut));
    }
    (text.into_bytes(), label)
}

fn not_json(gen: &mut Gen) -> (Vec<u8>, String) {
    let (bytes, label): (Vec<u8>, &str) = match gen.below(7) {
        0 => {
            let len = gen.len_up_to(4096);
            (gen.bytes(len), "random bytes")
        }
        1 => (b"\xef\xbb\xbf{\"message_id\": 1}".to_vec(), "a byte order mark"),
        2 => (b"{\"source\": \"fz\"} trailing".to_vec(), "trailing garbage"),
        3 => (b"{\"source\": \"a\", \"source\": 7, \"source\": null}".to_vec(), "repeated keys"),
        4 => (gen.pick(&[&b"null"[..], b"[]", b"\"text\"", b"42", b""]).to_vec(), "not an object"),
        5 => (b"{\"payload\": {\"data\": \"\xff\xfe\"}}".to_vec(), "invalid UTF-8 in a string"),
        _ => (b"{\"a\":1,}".to_vec(), "a trailing comma"),
    };
    (bytes, label.to_string())
}

/// A client that publishes envelopes, some of it listening for the error events.
pub(crate) fn envelopes(gen: &mut Gen, case: &mut Case) {
    let level = level(gen);
    let (bytes, label) = connect(gen, level, false);
    send(gen, case, label, bytes);
    if gen.chance(40) {
        let qos = gen.below(2) as u8;
        let bytes = plain_subscribe(level, 1, &["alicia/+/+/error", topics::MONITORING_ALERTS], qos);
        send(gen, case, format!("SUBSCRIBE error topics qos{qos}"), bytes);
    }
    for i in 0..gen.range(1, 6) {
        let topic = request_topic(gen);
        let data = data_value(gen, 3);
        let (payload, what) = body(gen, data);
        let qos = gen.below(2) as u8;
        let retain = gen.chance(3);
        let bytes = plain_publish(level, topic.as_bytes(), qos, 100 + i as u16, retain, &payload);
        send(gen, case, format!("{topic} qos{qos}: {what} envelope, {} B", payload.len()), bytes);
    }
    case.ending = ending(gen);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_envelopes_pass_the_engines_own_validation() {
        for i in 0..100 {
            let mut g = Gen::for_case(21, i);
            let data = data_value(&mut g, 3);
            let env = valid(&mut g, data);
            let bytes = serde_json::to_vec(&env).unwrap();
            alicia_envelope::Envelope::decode(&bytes).unwrap_or_else(|e| panic!("{e}: {env}"));
        }
    }

    #[test]
    fn broken_envelopes_are_mostly_refused() {
        let (mut refused, mut total) = (0, 0);
        for i in 0..400 {
            let mut g = Gen::for_case(22, i);
            let (bytes, label) = body(&mut g, json!({}));
            if label == "valid" {
                continue;
            }
            total += 1;
            refused += usize::from(alicia_envelope::Envelope::decode(&bytes).is_err());
        }
        // Some odd values (an optional field removed, say) are still valid.
        assert!(refused * 10 >= total * 7, "{refused} of {total} refused");
    }
}
