//! Client packets of MQTT 3.1.1 and 5 that parse as packets but say odd things: QoS 3,
//! reserved flags, packet ids 0 and repeated, acknowledgements for ids nobody sent,
//! wildcards in topic names, `$share` filters with odd groups, topic aliases at and past
//! their edges, a second CONNECT, AUTH, DISCONNECT changing the session expiry, huge
//! SUBSCRIBEs, and packet types only a server may send.

use super::gen::Gen;
use super::mqtt_props::{self, Ctx};
use super::mqtt_wire::{packet, put_str, put_u16, Length};

pub(crate) const V311: u8 = 4;
pub(crate) const V5: u8 = 5;

/// What a connection has said so far, so later packets can refer to it, or pretend to.
pub(crate) struct Conv {
    pub level: u8,
    pub pkids: Vec<u16>,
    pub aliases: Vec<u16>,
    /// Bytes this connection may still send; large fields shrink to fit.
    pub budget: usize,
}

impl Conv {
    pub(crate) fn new(level: u8, budget: usize) -> Conv {
        Conv { level, pkids: Vec::new(), aliases: Vec::new(), budget }
    }

    fn v5(&self) -> bool {
        self.level == V5
    }

    fn take(&mut self, gen: &mut Gen, max: usize) -> usize {
        let len = gen.len_up_to(max.min(self.budget));
        self.budget -= len;
        len
    }
}

/// Client ids from a small pool, so the sessions a run leaves behind (clean session
/// off, long session expiry) are bounded and later cases take them over.
pub(crate) fn client_id(gen: &mut Gen) -> Vec<u8> {
    match gen.weighted(&[82, 4, 14]) {
        0 => format!("fz-{}", gen.below(48)).into_bytes(),
        1 => Vec::new(),
        _ => match gen.below(7) {
            0 => "fz-ü".as_bytes().to_vec(),
            1 => b"fz/+#".to_vec(),
            2 => b"fz\0nul".to_vec(),
            3 => vec![0xff, 0xfe, b'f', b'z'],
            4 => b"$SYS".to_vec(),
            5 => vec![b'i'; 256],
            _ => vec![b'i'; 257],
        },
    }
}

/// A topic name: ordinary mostly, else one a name must not be or that trips a router.
pub(crate) fn topic_name(gen: &mut Gen) -> Vec<u8> {
    match gen.weighted(&[50, 10, 8, 5, 4, 10, 5, 3, 3, 2]) {
        0 => format!("fz/{}/{}", gen.word(6), gen.below(10)).into_bytes(),
        1 => format!("alicia/devices/{}/status", gen.word(8)).into_bytes(),
        2 => gen.pick(&[&b"fz/+/x"[..], b"#", b"fz/#", b"+", b"fz/a+b"]).to_vec(),
        3 => Vec::new(),
        4 => b"$SYS/broker/fuzz".to_vec(),
        5 => gen.odd_text(),
        6 => vec![b'l'; *gen.pick(&[4096usize, 4097, 65_535])],
        7 => b"////".to_vec(),
        8 => b"$share/g/fz".to_vec(),
        _ => b"/".to_vec(),
    }
}

/// A topic filter, including `$share` ones with odd groups and misplaced wildcards.
pub(crate) fn topic_filter(gen: &mut Gen) -> Vec<u8> {
    match gen.weighted(&[20, 8, 10, 5, 3, 20, 10, 10, 4, 5, 5]) {
        0 => b"fz/#".to_vec(),
        1 => b"#".to_vec(),
        2 => b"fz/+/+".to_vec(),
        3 => b"alicia/#".to_vec(),
        4 => b"$SYS/#".to_vec(),
        5 => {
            let group = gen.pick(&[&b"g"[..], b"", b"+", b"#", b"g/h", "ü".as_bytes(), b"\0", b"$share"]).to_vec();
            let filter = gen.pick(&[&b"fz/#"[..], b"", b"#", b"+/+", b"$share/g/x"]).to_vec();
            if gen.chance(10) {
                [&b"$share/"[..], &group[..]].concat()
            } else {
                [&b"$share/"[..], &group[..], b"/", &filter[..]].concat()
            }
        }
        6 => gen.pick(&[&b"fz/a#"[..], b"fz/#/x", b"fz+", b"+fz", b"fz/++", b"##"]).to_vec(),
        7 => gen.odd_text(),
        8 => vec![b'f'; *gen.pick(&[4096usize, 4097, 65_535])],
        9 => Vec::new(),
        _ => format!("alicia/voice/audio/{}/+", gen.word(6)).into_bytes(),
    }
}

/// A CONNECT for `level`: a plain one, or (`odd`) one with flags, name, level,
/// properties, will or credentials out of line.
pub(crate) fn connect(gen: &mut Gen, level: u8, odd: bool) -> (Vec<u8>, String) {
    let mut labels = vec![format!("CONNECT v{}", if level == V5 { "5" } else { "3.1.1" })];
    let name: &[u8] = if odd && gen.chance(15) {
        let n = *gen.pick(&[&b"MQIsdp"[..], b"", b"mqtt", b"MQTT\0", b"MQTTT"]);
        labels.push(format!("name {:?}", String::from_utf8_lossy(n)));
        n
    } else {
        b"MQTT"
    };
    let level_byte = if odd && gen.chance(10) {
        let l = *gen.pick(&[0u8, 3, 6, 0xff]);
        labels.push(format!("level {l}"));
        l
    } else {
        level
    };
    let clean = !gen.chance(30);
    let will = gen.chance(if odd { 25 } else { 5 });
    let (user, pass) = if odd { (gen.chance(20), gen.chance(20)) } else { (false, false) };
    let mut flags = (u8::from(clean) << 1) | (u8::from(will) << 2) | (u8::from(user) << 7) | (u8::from(pass) << 6);
    if will {
        flags |= (gen.below(if odd { 4 } else { 3 }) as u8) << 3;
        flags |= u8::from(gen.chance(20)) << 5;
    } else if odd && gen.chance(10) {
        flags |= 0x38; // will QoS and retain without a will
        labels.push("will bits without will".into());
    }
    if odd && gen.chance(8) {
        flags |= 1;
        labels.push("reserved flag".into());
    }
    if !clean {
        labels.push("persistent".into());
    }
    let keep_alive = if odd { *gen.pick(&[0u16, 1, 5, 60, u16::MAX]) } else { 60 };
    let mut body = Vec::new();
    put_str(&mut body, name);
    body.push(level_byte);
    body.push(flags);
    put_u16(&mut body, keep_alive);
    if level == V5 {
        let (props, label) = if odd {
            mqtt_props::block(gen, Ctx::Connect, 32_768)
        } else {
            (mqtt_props::exact(&[mqtt_props::one(0x11, *gen.pick(&[0u32, 30, 300]))]), String::new())
        };
        body.extend_from_slice(&props);
        if !label.is_empty() {
            labels.push(label);
        }
    }
    put_str(&mut body, &client_id(gen));
    if will {
        if level == V5 {
            let (props, label) = mqtt_props::block(gen, Ctx::Will, 16_384);
            body.extend_from_slice(&props);
            if !label.is_empty() {
                labels.push(format!("will {label}"));
            }
        }
        put_str(&mut body, &topic_name(gen));
        let len = gen.len_up_to(70_000);
        put_str(&mut body, &gen.bytes(len));
        labels.push("will".into());
    }
    if user {
        put_str(&mut body, &gen.odd_text());
    }
    if pass {
        let len = gen.len_up_to(300);
        put_str(&mut body, &gen.bytes(len));
    }
    let length = if odd { Length::draw(gen) } else { Length::True };
    labels.push(length.label().trim().to_string());
    (packet(0x10, &body, length), join(labels))
}

fn join(labels: Vec<String>) -> String {
    labels.into_iter().filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ")
}

/// A packet id: 0 (never valid), one already used, or a fresh one.
fn pkid(gen: &mut Gen, conv: &mut Conv) -> u16 {
    let id = match gen.weighted(&[5, 15, 80]) {
        0 => 0,
        1 if !conv.pkids.is_empty() => *gen.pick(&conv.pkids),
        _ => gen.u16().max(1),
    };
    conv.pkids.push(id);
    id
}

fn publish(gen: &mut Gen, conv: &mut Conv) -> (Vec<u8>, String) {
    let qos = gen.weighted(&[40, 35, 20, 5]) as u8;
    let (dup, retain) = (gen.chance(10), gen.chance(10));
    let mut labels =
        vec![format!("PUBLISH qos{qos}{}{}", if dup { " dup" } else { "" }, if retain { " retain" } else { "" })];
    let mut topic = topic_name(gen);
    let mut body = Vec::new();
    let mut props = Vec::new();
    let mut non_utf8_payload = false;
    if conv.v5() {
        match gen.weighted(&[60, 22, 13, 5]) {
            0 => {
                let (block, label) = mqtt_props::block(gen, Ctx::Publish, conv.budget.min(200_000));
                props = block;
                labels.push(label);
            }
            1 => {
                // Topic aliases: set one (0, in range, past the maximum), or use one
                // with an empty topic, set earlier or not.
                let alias = match (conv.aliases.is_empty(), gen.chance(50)) {
                    (false, true) => *gen.pick(&conv.aliases),
                    _ => *gen.pick(&[0u16, 1, 2, 10, 11, u16::MAX]),
                };
                if gen.chance(50) {
                    topic.clear();
                    labels.push(format!("empty topic, alias {alias}"));
                } else {
                    conv.aliases.push(alias);
                    labels.push(format!("alias {alias} set"));
                }
                props = mqtt_props::exact(&[mqtt_props::one(0x23, u32::from(alias))]);
            }
            2 => {
                props = mqtt_props::exact(&[mqtt_props::one(0x01, 1)]);
                non_utf8_payload = gen.chance(80);
                labels.push(format!("utf-8 indicator{}", if non_utf8_payload { ", payload not utf-8" } else { "" }));
            }
            _ => {
                let id = *gen.pick(&[0u32, 1, 268_435_455]);
                props = mqtt_props::exact(&[mqtt_props::one(0x0b, id)]);
                labels.push(format!("subscription id {id} from a client"));
            }
        }
    }
    put_str(&mut body, &topic);
    if qos > 0 {
        put_u16(&mut body, pkid(gen, conv));
    }
    body.extend_from_slice(&props);
    let payload_len = match gen.weighted(&[10, 50, 28, 12]) {
        0 => 0,
        1 => conv.take(gen, 256),
        2 => conv.take(gen, 65_536),
        _ => conv.take(gen, 1_200_000),
    };
    if non_utf8_payload {
        body.extend(std::iter::repeat_n([0xc3u8, 0x28], payload_len.div_ceil(2).max(1)).flatten());
    } else {
        body.extend_from_slice(&gen.bytes(payload_len));
    }
    labels.push(format!("{payload_len} B"));
    let byte1 = 0x30 | (u8::from(dup) << 3) | (qos << 1) | u8::from(retain);
    let length = Length::draw(gen);
    labels.push(length.label().trim().to_string());
    (packet(byte1, &body, length), join(labels))
}

fn ack(gen: &mut Gen, conv: &mut Conv) -> (Vec<u8>, String) {
    let (kind, name) = *gen.pick(&[(4u8, "PUBACK"), (5, "PUBREC"), (6, "PUBREL"), (7, "PUBCOMP")]);
    let id = if !conv.pkids.is_empty() && gen.chance(40) { *gen.pick(&conv.pkids) } else { gen.u16() };
    let mut body = Vec::new();
    put_u16(&mut body, id);
    let mut label = format!("{name} {id}");
    if conv.v5() && gen.chance(50) {
        let reason = *gen.pick(&[0x00u8, 0x10, 0x80, 0x92, 0xff]);
        body.push(reason);
        let (props, plabel) = mqtt_props::block(gen, Ctx::Ack, 16_384);
        body.extend_from_slice(&props);
        label = format!("{label} reason 0x{reason:02x} {plabel}");
    } else if gen.chance(5) {
        body.truncate(1);
        label.push_str(" truncated");
    }
    let byte1 = (kind << 4) | if kind == 6 { 0x02 } else { 0 };
    (packet(byte1, &body, Length::draw(gen)), label)
}

fn subscribe(gen: &mut Gen, conv: &mut Conv, unsubscribe: bool) -> (Vec<u8>, String) {
    let id = pkid(gen, conv);
    let mut body = Vec::new();
    put_u16(&mut body, id);
    let mut label = format!("{} {id}", if unsubscribe { "UNSUBSCRIBE" } else { "SUBSCRIBE" });
    if conv.v5() {
        let ctx = if unsubscribe { Ctx::Unsubscribe } else { Ctx::Subscribe };
        let (props, plabel) = mqtt_props::block(gen, ctx, 16_384);
        body.extend_from_slice(&props);
        label = format!("{label} {plabel}");
    }
    let count = match gen.weighted(&[50, 30, 5, 15]) {
        0 => 1,
        1 => gen.range(2, 5),
        2 => 0,
        _ => *gen.pick(&[64usize, 65, 1_000, 5_000]),
    };
    let mut odd_options = 0;
    for _ in 0..count {
        let filter = topic_filter(gen);
        if body.len() + filter.len() > conv.budget {
            break;
        }
        put_str(&mut body, &filter);
        if !unsubscribe {
            let qos = gen.weighted(&[30, 40, 25, 5]) as u8;
            let mut options = qos;
            if conv.v5() {
                // no local, retain as published, retain handling (3 is invalid)
                options |= (u8::from(gen.chance(20)) << 2) | (u8::from(gen.chance(20)) << 3);
                options |= (gen.below(4) as u8) << 4;
            }
            if gen.chance(4) {
                options |= 0xc0;
                odd_options += 1;
            }
            body.push(options);
        }
    }
    conv.budget = conv.budget.saturating_sub(body.len());
    label = format!("{label} {count} filters");
    if odd_options > 0 {
        label = format!("{label}, {odd_options} with reserved option bits");
    }
    let byte1 = if unsubscribe { 0xa2 } else { 0x82 };
    (packet(byte1, &body, Length::draw(gen)), label)
}

fn disconnect(gen: &mut Gen, conv: &Conv) -> (Vec<u8>, String) {
    if !conv.v5() {
        return (vec![0xe0, 0x00], "DISCONNECT".into());
    }
    let reason = *gen.pick(&[0x00u8, 0x04, 0x80, 0x8e, 0x95]);
    let (props, label) = if gen.chance(50) {
        // 0 → non-zero after a CONNECT with expiry 0 is a protocol error.
        let expiry = *gen.pick(&[0u32, 60, u32::MAX]);
        (mqtt_props::exact(&[mqtt_props::one(0x11, expiry)]), format!("session expiry {expiry}"))
    } else {
        mqtt_props::block(gen, Ctx::Disconnect, 16_384)
    };
    let mut body = vec![reason];
    body.extend_from_slice(&props);
    (packet(0xe0, &body, Length::draw(gen)), format!("DISCONNECT 0x{reason:02x} {label}"))
}

fn auth(gen: &mut Gen) -> (Vec<u8>, String) {
    let reason = *gen.pick(&[0x00u8, 0x18, 0x19, 0x87]);
    let (props, label) = mqtt_props::block(gen, Ctx::Auth, 16_384);
    let mut body = vec![reason];
    body.extend_from_slice(&props);
    (packet(0xf0, &body, Length::draw(gen)), format!("AUTH 0x{reason:02x} {label}"))
}

/// A plain CONNECT for `client_id` with clean session off (v5: with `expiry`), so its
/// session and what is queued for it outlive the connection.
pub(crate) fn persistent_connect(level: u8, client_id: &[u8], expiry: u32) -> Vec<u8> {
    let mut body = Vec::new();
    put_str(&mut body, b"MQTT");
    body.push(level);
    body.push(0x00);
    put_u16(&mut body, 60);
    if level == V5 {
        body.extend_from_slice(&mqtt_props::exact(&[mqtt_props::one(0x11, expiry)]));
    }
    put_str(&mut body, client_id);
    packet(0x10, &body, Length::True)
}

/// A well-formed PUBLISH (no properties on v5): for cases whose oddity is the payload.
pub(crate) fn plain_publish(level: u8, topic: &[u8], qos: u8, pkid: u16, retain: bool, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(topic.len() + payload.len() + 5);
    put_str(&mut body, topic);
    if qos > 0 {
        put_u16(&mut body, pkid);
    }
    if level == V5 {
        body.push(0);
    }
    body.extend_from_slice(payload);
    packet(0x30 | (qos << 1) | u8::from(retain), &body, Length::True)
}

/// A well-formed SUBSCRIBE to `filters` at `qos`.
pub(crate) fn plain_subscribe(level: u8, pkid: u16, filters: &[&str], qos: u8) -> Vec<u8> {
    let mut body = Vec::new();
    put_u16(&mut body, pkid);
    if level == V5 {
        body.push(0);
    }
    for f in filters {
        put_str(&mut body, f.as_bytes());
        body.push(qos);
    }
    packet(0x82, &body, Length::True)
}

/// One packet after the CONNECT.
pub(crate) fn any_packet(gen: &mut Gen, conv: &mut Conv) -> (Vec<u8>, String) {
    match gen.weighted(&[35, 14, 14, 6, 5, 4, 3, 3, 3, 3]) {
        0 => publish(gen, conv),
        1 => ack(gen, conv),
        2 => subscribe(gen, conv, false),
        3 => subscribe(gen, conv, true),
        4 if gen.chance(80) => (vec![0xc0, 0x00], "PINGREQ".into()),
        4 => (vec![0xc0, 0x02, 0x00, 0x00], "PINGREQ with a body".into()),
        5 => disconnect(gen, conv),
        6 => auth(gen),
        7 => {
            let odd = gen.chance(50);
            let (bytes, label) = connect(gen, conv.level, odd);
            (bytes, format!("second {label}"))
        }
        8 => {
            // Types only a server sends (and AUTH from a 3.1.1 client).
            let byte1 = *gen.pick(&[0x00u8, 0x20, 0x90, 0xb0, 0xd0, 0xf0]);
            let junk = gen.below(8);
            (packet(byte1, &gen.bytes(junk), Length::True), format!("server-only type {}", byte1 >> 4))
        }
        _ => {
            let byte1 = *gen.pick(&[0x80u8, 0x83, 0x60, 0xa0, 0xc3, 0xe1, 0x4f, 0x51, 0x72]);
            let junk = gen.range(2, 6);
            (packet(byte1, &gen.bytes(junk), Length::True), format!("reserved flags 0x{byte1:02x}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{self, Packet};

    #[test]
    fn plain_connects_parse_as_connects() {
        for i in 0..200 {
            let mut g = Gen::for_case(11, i);
            let level = *g.pick(&[V311, V5]);
            let (bytes, label) = connect(&mut g, level, false);
            assert_eq!(bytes[0], 0x10, "{label}");
            let (len, used) = {
                let mut v = 0usize;
                let mut n = 0;
                for (i, b) in bytes[1..].iter().enumerate() {
                    v |= usize::from(b & 0x7f) << (7 * i);
                    n = i + 1;
                    if b & 0x80 == 0 {
                        break;
                    }
                }
                (v, n)
            };
            assert_eq!(bytes.len(), 1 + used + len, "{label}: the length tells the truth");
            assert_eq!(&bytes[1 + used..1 + used + 6], b"\x00\x04MQTT");
        }
    }

    #[test]
    fn packets_respect_the_budget_and_qos_draws_include_3() {
        let mut saw_qos3 = false;
        for i in 0..300 {
            let mut g = Gen::for_case(12, i);
            let mut conv = Conv::new(*g.pick(&[V311, V5]), 300_000);
            for _ in 0..10 {
                let (bytes, label) = any_packet(&mut g, &mut conv);
                assert!(!bytes.is_empty());
                saw_qos3 |= label.starts_with("PUBLISH qos3");
                if let Ok(Some((Packet::Publish(p), _))) = wire::decode(&bytes) {
                    assert!(p.payload.len() <= 1_200_000 + 200_000);
                }
            }
            assert!(conv.budget <= 300_000);
        }
        assert!(saw_qos3);
    }
}
