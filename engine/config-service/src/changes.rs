//! What an update changes, and which of it the running engine can put in force.
//!
//! Live (applied at once, no connection dropped): `[security]`'s `allow_anonymous`,
//! `password_file`, `acl_file` and `token_key_file` (the gateway's rules swap whole and
//! every session's compiled rules follow) and `engine.log_level` (the log filter is
//! reloaded). Everything else is read when a part starts (listen addresses, io threads,
//! limits compiled into the nodes, the router's log, the voice models...): such a change
//! is accepted and written, and reported as `restart_required` until the engine restarts.

use alicia_config::AliciaConfig;
use serde_json::Value;

/// Keys put in force without a restart, as dotted paths (a prefix covers what is below).
pub const LIVE_PATHS: [&str; 5] = [
    "security.allow_anonymous",
    "security.password_file",
    "security.acl_file",
    "security.token_key_file",
    "engine.log_level",
];

/// Whether the change at `path` can be applied live.
pub fn is_live(path: &str) -> bool {
    LIVE_PATHS.iter().any(|live| path == *live || path.strip_prefix(live).is_some_and(|rest| rest.starts_with('.')))
}

/// The dotted paths whose values differ between `a` and `b`, in order.
pub fn changed_paths(a: &AliciaConfig, b: &AliciaConfig) -> Vec<String> {
    let (a, b) = (to_json(a), to_json(b));
    let mut out = Vec::new();
    diff(&a, &b, "", &mut out);
    out
}

fn to_json(config: &AliciaConfig) -> Value {
    // Plain data with string keys: serialising cannot fail.
    serde_json::to_value(config).unwrap_or(Value::Null)
}

fn diff(a: &Value, b: &Value, prefix: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let path = if prefix.is_empty() { key.clone() } else { format!("{prefix}.{key}") };
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) => diff(x, y, &path, out),
                    _ => out.push(path),
                }
            }
        }
        (a, b) if a != b => out.push(prefix.to_string()),
        _ => {}
    }
}

/// `in_force` with the live keys of `wanted`: what runs after the update is applied.
pub fn with_live_parts(in_force: &AliciaConfig, wanted: &AliciaConfig) -> AliciaConfig {
    let mut next = in_force.clone();
    next.security.allow_anonymous = wanted.security.allow_anonymous;
    next.security.password_file = wanted.security.password_file.clone();
    next.security.acl_file = wanted.security.acl_file.clone();
    next.security.token_key_file = wanted.security.token_key_file.clone();
    next.engine.log_level = wanted.engine.log_level.clone();
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_split_into_live_and_restart() {
        let old = AliciaConfig::default();
        let mut new = old.clone();
        new.limits.max_connections = 5;
        new.security.acl_file = Some("/etc/acl".into());
        new.engine.log_level = "debug".into();
        let changed = changed_paths(&old, &new);
        assert_eq!(changed, ["engine.log_level", "limits.max_connections", "security.acl_file"]);
        let live: Vec<_> = changed.iter().filter(|p| is_live(p)).collect();
        assert_eq!(live, ["engine.log_level", "security.acl_file"]);
        let next = with_live_parts(&old, &new);
        assert_eq!(changed_paths(&next, &new), ["limits.max_connections"], "only the restart part is pending");
        assert!(!is_live("security.acl_file_x") && !is_live("security.audit_file"));
    }
}
