//! Property: every envelope the types can hold encodes to bytes that decode
//! back to the same envelope, and no input makes decode panic.

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Map, Value};

use crate::envelope::{Destination, Envelope, MessageType, Payload, Priority, Routing, Security};

fn arbitrary_json() -> impl Strategy<Value = Value> {
    // Floats are multiples of 1/8 so their decimal form reads back exactly
    // (serde_json without `float_roundtrip` may be off by one ulp otherwise).
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<i32>().prop_map(|n| Value::from(f64::from(n) / 8.0)),
        ".*".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arbitrary_metadata() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map("[a-z_]{1,10}", arbitrary_json(), 0..4).prop_map(|m| m.into_iter().collect())
}

fn arbitrary_destination() -> impl Strategy<Value = Destination> {
    let name = "[a-zA-Z0-9_./-]{1,20}";
    prop_oneof![
        Just(Destination::Broadcast),
        name.prop_filter("reserved spellings", |n| n != "broadcast"
            && !n.starts_with("capability:")
            && !n.starts_with("device_id:"))
            .prop_map(Destination::Service),
        name.prop_map(Destination::Capability),
        ".{0,8}[a-z].{0,8}".prop_map(Destination::Device),
    ]
}

fn arbitrary_envelope() -> impl Strategy<Value = Envelope> {
    let timestamp = (0_i64..253_402_300_799, 0_u32..1_000_000_000)
        .prop_map(|(seconds, nanos)| Utc.timestamp_opt(seconds, nanos).unwrap());
    let security = prop::option::of(
        (prop::option::of(".*"), prop::option::of(".*"), prop::option::of(".*"))
            .prop_map(|(signature, encryption, key_id)| Security { signature, encryption, key_id }),
    );
    let routing = (any::<u32>(), any::<u32>(), prop::collection::vec(".*", 0..3))
        .prop_map(|(hops, max_hops, route)| Routing { hops, max_hops, route });
    (
        (any::<u128>(), timestamp, "[a-z_]{0,12}[a-z]", arbitrary_destination()),
        (prop::sample::select(MessageType::ALL), prop::sample::select(Priority::ALL), any::<u32>()),
        (arbitrary_json(), arbitrary_metadata(), security, routing),
    )
        .prop_map(
            |(
                (bits, timestamp, source, destination),
                (message_type, priority, ttl),
                (data, metadata, security, routing),
            )| {
                Envelope {
                    message_id: uuid::Builder::from_random_bytes(bits.to_le_bytes()).into_uuid(),
                    timestamp,
                    source,
                    destination,
                    message_type,
                    priority,
                    ttl,
                    payload: Payload { data, metadata },
                    security,
                    routing,
                }
            },
        )
}

proptest! {
    #[test]
    fn any_valid_envelope_round_trips(envelope in arbitrary_envelope()) {
        let bytes = envelope.encode();
        let decoded = Envelope::decode(&bytes);
        prop_assert_eq!(decoded, Ok(envelope));
    }

    #[test]
    fn decode_never_panics_on_garbage(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = Envelope::decode(&bytes);
    }
}
