//! The single serde_json pass behind `Envelope::decode`.
//!
//! Every field is collected without judging its type, so that validation can
//! name the failing field instead of surfacing a serde message. Two things keep
//! the pass cheap: strings borrow from the input when they have no escapes
//! (most are parsed into ids, times and enums, never kept), and the envelope's
//! own objects (`payload`, `security`, `routing`) are read key by key into
//! slots rather than built as maps and taken apart again.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::SeqAccessDeserializer;
use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// One JSON value: a string, an object read into `T`'s slots, or anything else.
pub(super) enum Raw<'de, T> {
    Str(Cow<'de, str>),
    Object(T),
    Other(Value),
}

impl<T> Raw<'_, T> {
    /// "a string", "an object", ... for error reasons.
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Raw::Str(_) => "a string",
            Raw::Object(_) => "an object",
            Raw::Other(value) => kind(value),
        }
    }

    pub(super) fn is_null(&self) -> bool {
        matches!(self, Raw::Other(Value::Null))
    }
}

pub(super) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An object whose keys are read one at a time into named slots.
pub(super) trait Slots<'de>: Default {
    /// Stores the value of `key`, or skips it unread if the key is unknown. A
    /// repeated key overwrites: the last one wins.
    fn read<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error>;
}

/// Where a string field holds an object, nothing in it is needed but its kind.
#[derive(Default)]
pub(super) struct Skipped;

impl<'de> Slots<'de> for Skipped {
    fn read<A: MapAccess<'de>>(&mut self, _key: &str, map: &mut A) -> Result<(), A::Error> {
        map.next_value::<IgnoredAny>().map(drop)
    }
}

/// A field that should be a string.
pub(super) type RawStr<'de> = Raw<'de, Skipped>;

#[derive(Default)]
pub(super) struct RawEnvelope<'de> {
    pub message_id: Option<RawStr<'de>>,
    pub timestamp: Option<RawStr<'de>>,
    pub source: Option<RawStr<'de>>,
    pub destination: Option<RawStr<'de>>,
    pub message_type: Option<RawStr<'de>>,
    pub priority: Option<RawStr<'de>>,
    pub ttl: Option<Value>,
    pub payload: Option<Raw<'de, RawPayload>>,
    pub security: Option<Raw<'de, RawSecurity>>,
    pub routing: Option<Raw<'de, RawRouting>>,
}

impl<'de> Slots<'de> for RawEnvelope<'de> {
    fn read<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "message_id" => self.message_id = Some(map.next_value()?),
            "timestamp" => self.timestamp = Some(map.next_value()?),
            "source" => self.source = Some(map.next_value()?),
            "destination" => self.destination = Some(map.next_value()?),
            "message_type" => self.message_type = Some(map.next_value()?),
            "priority" => self.priority = Some(map.next_value()?),
            "ttl" => self.ttl = Some(map.next_value()?),
            "payload" => self.payload = Some(map.next_value()?),
            "security" => self.security = Some(map.next_value()?),
            "routing" => self.routing = Some(map.next_value()?),
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
pub(super) struct RawPayload {
    pub data: Option<Value>,
    pub metadata: Option<Value>,
}

impl<'de> Slots<'de> for RawPayload {
    fn read<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "data" => self.data = Some(map.next_value()?),
            "metadata" => self.metadata = Some(map.next_value()?),
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
pub(super) struct RawSecurity {
    pub signature: Option<Value>,
    pub encryption: Option<Value>,
    pub key_id: Option<Value>,
}

impl<'de> Slots<'de> for RawSecurity {
    fn read<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "signature" => self.signature = Some(map.next_value()?),
            "encryption" => self.encryption = Some(map.next_value()?),
            "key_id" => self.key_id = Some(map.next_value()?),
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

#[derive(Default)]
pub(super) struct RawRouting {
    pub hops: Option<Value>,
    pub max_hops: Option<Value>,
    pub route: Option<Value>,
}

impl<'de> Slots<'de> for RawRouting {
    fn read<A: MapAccess<'de>>(&mut self, key: &str, map: &mut A) -> Result<(), A::Error> {
        match key {
            "hops" => self.hops = Some(map.next_value()?),
            "max_hops" => self.max_hops = Some(map.next_value()?),
            "route" => self.route = Some(map.next_value()?),
            _ => {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

impl<'de, T: Slots<'de>> Deserialize<'de> for Raw<'de, T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor(PhantomData))
    }
}

struct RawVisitor<T>(PhantomData<T>);

impl<'de, T: Slots<'de>> Visitor<'de> for RawVisitor<T> {
    type Value = Raw<'de, T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any json value")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Raw::Str(Cow::Borrowed(text)))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Raw::Str(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Self::Value, E> {
        Ok(Raw::Str(Cow::Owned(text)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut slots = T::default();
        while let Some(Key(key)) = map.next_key()? {
            slots.read(&key, &mut map)?;
        }
        Ok(Raw::Object(slots))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        Value::deserialize(SeqAccessDeserializer::new(seq)).map(Raw::Other)
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Self::Value, E> {
        Ok(Raw::Other(Value::Bool(value)))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Self::Value, E> {
        Ok(Raw::Other(Value::from(value)))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Raw::Other(Value::from(value)))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Self::Value, E> {
        Ok(Raw::Other(Value::from(value)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Raw::Other(Value::Null))
    }
}

/// An object key, borrowed from the input unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E: de::Error>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E: de::Error>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}
