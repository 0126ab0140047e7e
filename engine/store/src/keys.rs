//! The store's keys: one keyspace, a kind byte in front of each key.
//!
//! - `r` topic: a retained message
//! - `s` client id: a persistent session
//! - `w` client id: a pending will
//! - `q` len(client id) client id seq: a delivery held for a persistent session
//! - `f` len(client id) client id seq: where that delivery stands, when not waiting
//! - `a` namespace 0x00 name: a record another part of the engine owns (timers), its
//!   bytes opaque to the store
//!
//! A delivery's key carries its client id's length first, so one client's prefix never
//! covers another's ("a" and "ab"), and a big-endian sequence number after, so a
//! client's deliveries read back in the order they were queued.

use bytes::{BufMut, Bytes, BytesMut};

pub(crate) const RETAINED: u8 = b'r';
pub(crate) const SESSION: u8 = b's';
pub(crate) const WILL: u8 = b'w';
pub(crate) const DELIVERY: u8 = b'q';
pub(crate) const STATE: u8 = b'f';
pub(crate) const APP: u8 = b'a';

/// The key of an owned record: its namespace (no NUL in it) and name.
pub(crate) fn app(namespace: &str, name: &str) -> Bytes {
    let mut key = BytesMut::with_capacity(2 + namespace.len() + name.len());
    key.put_u8(APP);
    key.put_slice(namespace.as_bytes());
    key.put_u8(0);
    key.put_slice(name.as_bytes());
    key.freeze()
}

/// Every record of one namespace starts with this.
pub(crate) fn app_prefix(namespace: &str) -> Bytes {
    let mut key = BytesMut::with_capacity(2 + namespace.len());
    key.put_u8(APP);
    key.put_slice(namespace.as_bytes());
    key.put_u8(0);
    key.freeze()
}

pub(crate) fn simple(kind: u8, name: &[u8]) -> Bytes {
    let mut key = BytesMut::with_capacity(1 + name.len());
    key.put_u8(kind);
    key.put_slice(name);
    key.freeze()
}

/// Every delivery key (or state key) of one client starts with this.
pub(crate) fn client_prefix(kind: u8, client_id: &str) -> Bytes {
    let mut key = BytesMut::with_capacity(3 + client_id.len() + 8);
    key.put_u8(kind);
    key.put_u16(client_id.len() as u16);
    key.put_slice(client_id.as_bytes());
    key.freeze()
}

pub(crate) fn delivery(kind: u8, client_id: &str, seq: u64) -> Bytes {
    let mut key = BytesMut::from(&client_prefix(kind, client_id)[..]);
    key.put_u64(seq);
    key.freeze()
}

/// The client id and sequence number of a delivery or state key.
pub(crate) fn parse_delivery(key: &[u8]) -> Option<(&str, u64)> {
    let len = usize::from(u16::from_be_bytes(key.get(1..3)?.try_into().ok()?));
    let id = std::str::from_utf8(key.get(3..3 + len)?).ok()?;
    let seq = u64::from_be_bytes(key.get(3 + len..)?.try_into().ok()?);
    Some((id, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_clients_prefix_never_covers_anothers() {
        let a = delivery(DELIVERY, "a", 7);
        assert!(a.starts_with(&client_prefix(DELIVERY, "a")));
        assert!(!delivery(DELIVERY, "ab", 1).starts_with(&client_prefix(DELIVERY, "a")));
        assert_eq!(parse_delivery(&a), Some(("a", 7)));
        assert!(delivery(DELIVERY, "a", 1) < delivery(DELIVERY, "a", 256), "queued order is key order");
        assert_eq!(parse_delivery(b"q\x00"), None);
    }
}
