//! Semantic rules for the MQTT listeners (`[mqtt]`, `[mqtt.tls]`, `[mqtt.websocket]`),
//! the addresses every door binds, which must not collide, and `[security]`.

use std::net::SocketAddr;

use crate::check::{check_filter, in_range, ConfigErrors};
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
    let credentials = c.security.password_file.is_some() || c.security.token_key_file.is_some() || identity_logins;
    if !c.security.allow_anonymous && !credentials {
        errors.push(
            "security.allow_anonymous",
            "false without a security.password_file, security.token_key_file or mqtt.tls.use_identity_as_username: \
             no client could connect",
        );
    }
    check_addresses(c, errors);
    check_security(c, errors);
}

/// `[security]`'s own numbers and `[security.signing]`.
fn check_security(c: &AliciaConfig, errors: &mut ConfigErrors) {
    let s = &c.security;
    in_range(
        errors,
        "security.audit_max_bytes",
        usize::try_from(s.audit_max_bytes).unwrap_or(usize::MAX),
        4096,
        usize::MAX,
    );
    in_range(errors, "security.audit_keep", s.audit_keep as usize, 0, 1000);
    in_range(errors, "security.login_failures_before_backoff", s.login_failures_before_backoff as usize, 1, 1000);
    in_range(
        errors,
        "security.login_backoff_max_ms",
        usize::try_from(s.login_backoff_max_ms).unwrap_or(usize::MAX),
        1000,
        86_400_000,
    );
    let Some(signing) = &s.signing else { return };
    for filter in &signing.require {
        if let Err(why) = check_filter(filter) {
            errors.push("security.signing.require", format!("\"{filter}\" is not a valid topic filter: {why}"));
        }
    }
    in_range(
        errors,
        "security.signing.window_seconds",
        usize::try_from(signing.window_seconds).unwrap_or(usize::MAX),
        1,
        86_400,
    );
    in_range(errors, "security.signing.replay_capacity", signing.replay_capacity, 1, 10_000_000);
    if signing.sign_as.as_deref().is_some_and(str::is_empty) {
        errors.push("security.signing.sign_as", "must name a key of security.signing.key_file");
    }
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
