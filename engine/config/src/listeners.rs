//! Semantic rules for the MQTT listeners: `[mqtt]`, `[mqtt.tls]`, `[mqtt.websocket]`,
//! and the addresses every door binds, which must not collide.

use std::net::SocketAddr;

use crate::check::ConfigErrors;
use crate::model::AliciaConfig;

pub(crate) fn check(c: &AliciaConfig, errors: &mut ConfigErrors) {
    if let Some(tls) = &c.mqtt.tls {
        if tls.require_certificate && tls.ca.is_none() {
            errors.push("mqtt.tls.require_certificate", "true needs mqtt.tls.ca to check certificates against");
        }
        if tls.crl.is_some() && tls.ca.is_none() {
            errors.push("mqtt.tls.crl", "needs mqtt.tls.ca (the CRL revokes that CA's certificates)");
        }
        if tls.use_identity_as_username && !tls.require_certificate {
            // Else a client without a certificate would have no username at all.
            errors.push("mqtt.tls.use_identity_as_username", "true needs mqtt.tls.require_certificate = true");
        }
    }
    if c.mqtt.websocket.as_ref().is_some_and(|ws| ws.tls) && c.mqtt.tls.is_none() {
        errors.push("mqtt.websocket.tls", "true needs a [mqtt.tls] section (its cert, key and ca are used)");
    }
    let identity_logins = c.mqtt.tls.as_ref().is_some_and(|t| t.use_identity_as_username);
    if !c.security.allow_anonymous && c.security.password_file.is_none() && !identity_logins {
        errors.push(
            "security.allow_anonymous",
            "false without a security.password_file or mqtt.tls.use_identity_as_username: no client could connect",
        );
    }
    check_addresses(c, errors);
}

/// Two doors on one address would fail at bind time; say which, before anything starts.
fn check_addresses(c: &AliciaConfig, errors: &mut ConfigErrors) {
    let mut doors: Vec<(&str, SocketAddr)> = vec![("mqtt.listen", c.mqtt.listen)];
    if let Some(tls) = &c.mqtt.tls {
        doors.push(("mqtt.tls.listen", tls.listen));
    }
    if let Some(ws) = &c.mqtt.websocket {
        doors.push(("mqtt.websocket.listen", ws.listen));
    }
    doors.push(("http.listen", c.http.listen));
    for (i, (path, addr)) in doors.iter().enumerate() {
        // Port 0 asks the kernel for a free port: never a collision.
        if addr.port() == 0 {
            continue;
        }
        if let Some((first, _)) = doors[..i].iter().find(|(_, other)| other == addr) {
            errors.push(*path, format!("same address as {first} ({addr})"));
        }
    }
}
