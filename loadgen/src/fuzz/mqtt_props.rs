//! MQTT 5 properties: every identifier the specification defines, with values at and
//! past their edges, in the packets that allow them and in those that do not; repeated,
//! with the wrong type, unknown identifiers, huge user properties, and a block length
//! that lies.

use super::gen::Gen;
use super::mqtt_wire::{put_str, put_u16, put_u32, put_varint, VARINT_MAX};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Byte,
    U16,
    U32,
    Varint,
    Str,
    Bin,
    Pair,
}

/// (identifier, type, name) of every MQTT 5 property (5.0 §2.2.2.2).
const PROPERTIES: [(u8, Kind, &str); 27] = [
    (0x01, Kind::Byte, "payload-format"),
    (0x02, Kind::U32, "message-expiry"),
    (0x03, Kind::Str, "content-type"),
    (0x08, Kind::Str, "response-topic"),
    (0x09, Kind::Bin, "correlation-data"),
    (0x0b, Kind::Varint, "subscription-id"),
    (0x11, Kind::U32, "session-expiry"),
    (0x12, Kind::Str, "assigned-client-id"),
    (0x13, Kind::U16, "server-keep-alive"),
    (0x15, Kind::Str, "auth-method"),
    (0x16, Kind::Bin, "auth-data"),
    (0x17, Kind::Byte, "request-problem-info"),
    (0x18, Kind::U32, "will-delay"),
    (0x19, Kind::Byte, "request-response-info"),
    (0x1a, Kind::Str, "response-info"),
    (0x1c, Kind::Str, "server-reference"),
    (0x1f, Kind::Str, "reason-string"),
    (0x21, Kind::U16, "receive-maximum"),
    (0x22, Kind::U16, "topic-alias-maximum"),
    (0x23, Kind::U16, "topic-alias"),
    (0x24, Kind::Byte, "maximum-qos"),
    (0x25, Kind::Byte, "retain-available"),
    (0x26, Kind::Pair, "user-property"),
    (0x27, Kind::U32, "maximum-packet-size"),
    (0x28, Kind::Byte, "wildcard-available"),
    (0x29, Kind::Byte, "subscription-id-available"),
    (0x2a, Kind::Byte, "shared-available"),
];

/// The packet a property block belongs to: each allows its own identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ctx {
    Connect,
    Will,
    Publish,
    Ack,
    Subscribe,
    Unsubscribe,
    Disconnect,
    Auth,
}

impl Ctx {
    fn allowed(self) -> &'static [u8] {
        match self {
            Ctx::Connect => &[0x11, 0x15, 0x16, 0x17, 0x19, 0x21, 0x22, 0x26, 0x27],
            Ctx::Will => &[0x01, 0x02, 0x03, 0x08, 0x09, 0x18, 0x26],
            // 0x0b is server-to-client only in PUBLISH; a client sending it is in error.
            Ctx::Publish => &[0x01, 0x02, 0x03, 0x08, 0x09, 0x23, 0x26, 0x0b],
            Ctx::Ack | Ctx::Unsubscribe => &[0x1f, 0x26],
            Ctx::Subscribe => &[0x0b, 0x26],
            Ctx::Disconnect => &[0x11, 0x1f, 0x26, 0x1c],
            Ctx::Auth => &[0x15, 0x16, 0x1f, 0x26],
        }
    }
}

fn kind_of(id: u8) -> Option<(Kind, &'static str)> {
    PROPERTIES.iter().find(|p| p.0 == id).map(|p| (p.1, p.2))
}

/// A value for `id`, mostly at an edge the engine has a rule for.
fn put_value(gen: &mut Gen, out: &mut Vec<u8>, id: u8, kind: Kind) -> String {
    match kind {
        Kind::Byte => {
            let v = *gen.pick(&[0u8, 1, 2, 0xff]);
            out.push(v);
            v.to_string()
        }
        Kind::U16 => {
            // Topic aliases: 0 is invalid, 10 the engine's maximum, 11 one over.
            let v = match id {
                0x23 => {
                    let any = gen.u16();
                    *gen.pick(&[0u16, 1, 2, 10, 11, u16::MAX, any])
                }
                _ => *gen.pick(&[0u16, 1, 10, 100, u16::MAX]),
            };
            put_u16(out, v);
            v.to_string()
        }
        Kind::U32 => {
            let v = *gen.pick(&[0u32, 1, 60, 65_536, u32::MAX - 1, u32::MAX]);
            put_u32(out, v);
            v.to_string()
        }
        Kind::Varint => {
            if gen.chance(5) {
                out.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x01]);
                return "5-byte varint".into();
            }
            let v = *gen.pick(&[0u32, 1, 127, 128, 16_384, VARINT_MAX]);
            put_varint(out, v);
            v.to_string()
        }
        Kind::Str | Kind::Bin => {
            let s = gen.odd_text();
            put_str(out, &s);
            format!("{} B", s.len())
        }
        Kind::Pair => {
            let (k, v) = (gen.odd_text(), gen.odd_text());
            put_str(out, &k);
            put_str(out, &v);
            format!("{}+{} B", k.len(), v.len())
        }
    }
}

/// Many user properties, or a few very long ones: what a property block can make a
/// server hold.
fn huge_user_properties(gen: &mut Gen, out: &mut Vec<u8>, budget: usize) -> String {
    let value_len = *gen.pick(&[0usize, 8, 1024, 65_535]);
    let pair_len = 1 + 4 + 1 + value_len;
    let count = (budget / pair_len).clamp(1, 60_000);
    let value = vec![b'v'; value_len];
    for _ in 0..count {
        out.push(0x26);
        put_str(out, b"k");
        put_str(out, &value);
    }
    format!("{count} user properties of {value_len} B")
}

/// A property block for `ctx`, its length first; `budget` bounds its size in bytes.
/// The label says what is odd about it ("" when it is empty).
pub(crate) fn block(gen: &mut Gen, ctx: Ctx, budget: usize) -> (Vec<u8>, String) {
    let mut props = Vec::new();
    let mut labels = Vec::new();
    let shape = gen.weighted(&[35, 38, 8, 5, 5, 4, 5]);
    match shape {
        0 => {}
        1 | 2 => {
            // Allowed ones (1) or any identifier, even the server's own (2).
            for _ in 0..gen.range(1, 4) {
                let id = if shape == 1 { *gen.pick(ctx.allowed()) } else { gen.pick(&PROPERTIES).0 };
                let (kind, name) = kind_of(id).expect("listed");
                props.push(id);
                let value = put_value(gen, &mut props, id, kind);
                labels.push(format!("{name}={value}"));
            }
        }
        3 => {
            // The same property twice (allowed only for user properties and
            // subscription identifiers in some packets).
            let id = *gen.pick(ctx.allowed());
            let (kind, name) = kind_of(id).expect("listed");
            for _ in 0..2 {
                props.push(id);
                put_value(gen, &mut props, id, kind);
            }
            labels.push(format!("{name} twice"));
        }
        4 => {
            // A value of the wrong type: its bytes are read as something else.
            let (id, kind, name) = *gen.pick(&PROPERTIES);
            let wrong = *gen.pick(&[Kind::Byte, Kind::U16, Kind::U32, Kind::Str, Kind::Varint]);
            let wrong = if wrong == kind { Kind::Pair } else { wrong };
            props.push(id);
            put_value(gen, &mut props, id, wrong);
            labels.push(format!("{name} with a {wrong:?} value"));
        }
        5 => {
            // An identifier no version defines, or one written as a multi-byte varint.
            let id = *gen.pick(&[0x00u8, 0x04, 0x05, 0x2b, 0x7f, 0x80, 0xff]);
            props.push(id);
            if id & 0x80 != 0 {
                props.push(0x00);
            }
            let junk = gen.below(8);
            props.extend(gen.bytes(junk));
            labels.push(format!("unknown property 0x{id:02x}"));
        }
        _ => labels.push(huge_user_properties(gen, &mut props, budget)),
    }
    let mut out = Vec::with_capacity(props.len() + 4);
    match gen.weighted(&[90, 4, 4, 2]) {
        0 => put_varint(&mut out, props.len() as u32),
        1 => {
            put_varint(&mut out, props.len().saturating_sub(gen.range(1, 3)) as u32);
            labels.push("block length short".into());
        }
        2 => {
            put_varint(&mut out, (props.len() + gen.range(1, 100)) as u32);
            labels.push("block length long".into());
        }
        _ => {
            put_varint(&mut out, VARINT_MAX);
            labels.push("block length 268435455".into());
        }
    }
    out.extend_from_slice(&props);
    (out, labels.join(" "))
}

/// One property, as its identifier and a value of its own type: for packets that need
/// a particular one (a topic alias, a session expiry at DISCONNECT).
pub(crate) fn one(id: u8, value: u32) -> Vec<u8> {
    let mut out = vec![id];
    match kind_of(id).map(|k| k.0) {
        Some(Kind::Byte) => out.push(value as u8),
        Some(Kind::U16) => put_u16(&mut out, value as u16),
        Some(Kind::Varint) => put_varint(&mut out, value),
        _ => put_u32(&mut out, value),
    }
    out
}

/// A property block holding exactly `props` (each from [`one`]).
pub(crate) fn exact(props: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = props.concat();
    let mut out = Vec::with_capacity(body.len() + 4);
    put_varint(&mut out, body.len() as u32);
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_allowed_identifier_is_defined() {
        for ctx in [Ctx::Connect, Ctx::Will, Ctx::Publish, Ctx::Ack, Ctx::Subscribe, Ctx::Disconnect, Ctx::Auth] {
            for id in ctx.allowed() {
                assert!(kind_of(*id).is_some(), "{ctx:?} 0x{id:02x}");
            }
        }
    }

    #[test]
    fn exact_blocks_are_well_formed() {
        assert_eq!(exact(&[one(0x23, 11)]), vec![3, 0x23, 0, 11]);
        assert_eq!(exact(&[one(0x11, 60), one(0x01, 1)]), vec![7, 0x11, 0, 0, 0, 60, 0x01, 1]);
        assert_eq!(exact(&[]), vec![0]);
    }

    #[test]
    fn blocks_stay_within_their_budget_give_or_take_one_pair() {
        for i in 0..500 {
            let mut g = Gen::for_case(3, i);
            let (block, _) = block(&mut g, Ctx::Publish, 100_000);
            assert!(block.len() < 100_000 + 70_000, "{}", block.len());
        }
    }
}
