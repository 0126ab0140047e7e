//! Client identifiers as the router sees them.
//!
//! MQTT allows any UTF-8 client id, but rumqttd's router silently drops a connection
//! whose id contains `+`, `$`, `#` or `/`. The front door escapes those (and `%`, the
//! escape itself) so every valid id connects and distinct ids stay distinct.

use std::borrow::Cow;

const ESCAPED: [char; 5] = ['%', '+', '$', '#', '/'];

/// The router-safe form of a client id; unchanged (borrowed) in the common case.
pub fn router_client_id(client_id: &str) -> Cow<'_, str> {
    if !client_id.contains(ESCAPED) {
        return Cow::Borrowed(client_id);
    }
    let mut out = String::with_capacity(client_id.len() + 8);
    for c in client_id.chars() {
        if ESCAPED.contains(&c) {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A server-assigned id for a client that sent an empty one.
pub fn assigned_client_id() -> String {
    format!("alicia-{}", uuid::Uuid::new_v4().simple())
}

/// The router id of an in-process link (services, wills).
///
/// A client's `%` always reaches the router as `%25`, so no client can produce a router
/// id starting with `%!`: in-process links can never be taken over by a device.
pub fn internal_client_id(name: &str) -> String {
    format!("%!{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ids_are_borrowed() {
        assert!(matches!(router_client_id("kitchen-speaker_1"), Cow::Borrowed(_)));
    }

    #[test]
    fn router_forbidden_characters_are_escaped_injectively() {
        assert_eq!(router_client_id("a/b"), "a%2Fb");
        assert_eq!(router_client_id("$sys+#"), "%24sys%2B%23");
        // The escape character is escaped too, so "a%2Fb" and "a/b" stay distinct.
        assert_eq!(router_client_id("a%2Fb"), "a%252Fb");
        assert!(!router_client_id("x/+/#/$").contains(['+', '$', '#', '/']));
    }

    #[test]
    fn no_client_id_maps_onto_an_internal_one() {
        for id in ["%!wills", "%!", "%%!wills", "!wills"] {
            assert!(!router_client_id(id).starts_with("%!"), "{id}");
        }
    }
}
