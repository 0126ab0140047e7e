//! Validation that reports every problem at once, each with its path.
//!
//! serde stops at the first error, which makes fixing a config a loop of edit and
//! retry. Instead each key the user wrote is tried on its own against the defaults, so
//! one pass names every unknown key and every wrongly typed value; semantic rules
//! (ranges, cross-field conflicts) run on the typed result.

use std::fmt;

use toml::Value;

use crate::model::AliciaConfig;

/// One problem in a configuration, located by its dotted path (`limits.max_connections`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in one configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub(crate) fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError { path: path.into(), message: message.into() });
    }

    pub fn iter(&self) -> impl Iterator<Item = &ConfigError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Turns a parsed TOML document into a checked config, or every error in it.
pub(crate) fn config_from_value(root: Value) -> Result<AliciaConfig, ConfigErrors> {
    let mut errors = ConfigErrors::default();
    let defaults = default_tree();
    let Value::Table(user) = root else {
        errors.push("<root>", "expected a table of sections");
        return Err(errors);
    };

    let mut merged = defaults.clone();
    for (section, value) in &user {
        let Some(Value::Table(known)) = defaults.get(section) else {
            errors.push(section, format!("unknown section (expected one of: {})", keys(&defaults)));
            continue;
        };
        let Value::Table(fields) = value else {
            errors.push(section, "expected a table");
            continue;
        };
        for (key, field) in fields {
            let path = format!("{section}.{key}");
            if !known.contains_key(key) && !OPTIONAL_KEYS.contains(&(section.as_str(), key.as_str())) {
                errors.push(path, format!("unknown key (expected one of: {})", keys(known)));
                continue;
            }
            // Try this one key on top of the defaults: any error now belongs to it.
            let mut trial = defaults.clone();
            set(&mut trial, section, key, field.clone());
            match AliciaConfig::deserialize_value(Value::Table(trial)) {
                Ok(_) => set(&mut merged, section, key, field.clone()),
                Err(e) => errors.push(path, e),
            }
        }
    }
    // Only values that passed on their own were merged, so this parse succeeds and the
    // semantic rules see every valid value even when others were wrong.
    let config = match AliciaConfig::deserialize_value(Value::Table(merged)) {
        Ok(config) => config,
        Err(e) => {
            errors.push("<root>", e);
            return Err(errors);
        }
    };
    check_rules(&config, &mut errors);
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

impl AliciaConfig {
    fn deserialize_value(value: Value) -> Result<AliciaConfig, String> {
        value.try_into().map_err(|e: toml::de::Error| e.message().trim().to_string())
    }
}

/// Keys whose default is "not set": TOML has no null, so the defaults' tree lacks them.
const OPTIONAL_KEYS: &[(&str, &str)] = &[
    ("security", "password_file"),
    ("security", "acl_file"),
    ("security", "audit_file"),
    ("security", "signing"),
    ("mqtt", "tls"),
    ("mqtt", "websocket"),
    ("security", "token_key_file"),
    ("http", "token_file"),
    ("http", "tls_listen"),
    ("http", "tls_cert"),
    ("http", "tls_key"),
    ("http", "tls_ca"),
    ("http", "tls_crl"),
    ("storage", "dir"),
    ("voice", "chat"),
];

fn default_tree() -> toml::Table {
    match Value::try_from(AliciaConfig::default()) {
        Ok(Value::Table(t)) => t,
        // The defaults are plain data; failing to serialise them is a programming error.
        other => unreachable!("default config must serialise to a table: {other:?}"),
    }
}

fn set(tree: &mut toml::Table, section: &str, key: &str, value: Value) {
    if let Some(Value::Table(t)) = tree.get_mut(section) {
        t.insert(key.to_string(), value);
    }
}

fn keys(table: &toml::Table) -> String {
    table.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
}

/// Semantic rules on a well-typed config.
pub(crate) fn check_rules(c: &AliciaConfig, errors: &mut ConfigErrors) {
    let name = &c.engine.name;
    if name.is_empty() || name.contains(['/', '+', '#']) {
        errors.push("engine.name", "must be a non-empty service name without '/', '+' or '#'");
    }
    if let Err(e) = tracing_subscriber::EnvFilter::builder().parse(&c.engine.log_level) {
        errors
            .push("engine.log_level", format!("not a log filter ({e}): try \"info\" or \"warn,alicia_broker=debug\""));
    }
    in_range(errors, "mqtt.io_threads", c.mqtt.io_threads, 0, 64);
    in_range(errors, "mqtt.connect_timeout_ms", c.mqtt.connect_timeout_ms as usize, 100, 600_000);
    in_range(errors, "mqtt.write_timeout_ms", c.mqtt.write_timeout_ms as usize, 100, 3_600_000);
    in_range(errors, "mqtt.sys_interval_secs", c.mqtt.sys_interval_secs as usize, 0, 86_400);
    check_limits(c, errors);
    // rumqttd panics on segments under 1 KiB.
    in_range(errors, "router.segment_size_bytes", c.router.segment_size_bytes, 1024, usize::MAX);
    in_range(errors, "router.segment_count", c.router.segment_count, 1, 1024);
    in_range(errors, "services.heartbeat_interval_secs", c.services.heartbeat_interval_secs as usize, 1, 86_400);
    let monitor = &c.monitor;
    in_range(errors, "monitor.heartbeat_timeout_secs", monitor.heartbeat_timeout_secs as usize, 1, 86_400);
    if monitor.enabled && monitor.heartbeat_timeout_secs <= c.services.heartbeat_interval_secs {
        let message = "must be longer than services.heartbeat_interval_secs, or the engine itself looks offline";
        errors.push("monitor.heartbeat_timeout_secs", message);
    }
    in_range(errors, "monitor.max_components", monitor.max_components, 1, 1_000_000);
    in_range(errors, "monitor.metrics_interval_secs", monitor.metrics_interval_secs as usize, 1, 3_600);
    in_range(errors, "voice.stt_threads", c.voice.stt_threads, 1, 16);
    in_range(errors, "voice.hangover_ms", c.voice.hangover_ms as usize, 20, 5_000);
    if c.voice.unfinished_hangover_ms < c.voice.hangover_ms || c.voice.unfinished_hangover_ms > 10_000 {
        let message = format!("{} must be from hangover_ms to 10000", c.voice.unfinished_hangover_ms);
        errors.push("voice.unfinished_hangover_ms", message);
    }
    if c.voice.pause_ms != 0 && (c.voice.pause_ms < 20 || c.voice.pause_ms >= c.voice.hangover_ms) {
        errors.push("voice.pause_ms", format!("{} must be 0 (off) or from 20 to below hangover_ms", c.voice.pause_ms));
    }
    in_range(errors, "voice.session_timeout_ms", c.voice.session_timeout_ms as usize, 100, 600_000);
    in_range(errors, "storage.sync_interval_ms", c.storage.sync_interval_ms as usize, 1, 60_000);
    if c.storage.dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
        errors.push("storage.dir", "must be a directory path (leave it out to keep nothing)");
    }
    crate::doors::check(c, errors);
    crate::chat::check(c.voice.chat.as_ref(), errors);
    crate::voice_tuning::check(&c.voice.vad, &c.voice.stt, &c.voice.tts, errors);
    crate::listeners::check(c, errors);
    crate::exposure::check(c, errors);
    for (legacy, canonical) in &c.topics.aliases {
        let path = format!("topics.aliases.\"{legacy}\"");
        if let Err(why) = check_filter(legacy) {
            errors.push(&path, format!("alias is not a valid topic filter: {why}"));
        }
        if let Err(why) = check_filter(canonical) {
            errors.push(&path, format!("target \"{canonical}\" is not a valid topic filter: {why}"));
        }
    }
}

fn check_limits(c: &AliciaConfig, errors: &mut ConfigErrors) {
    let l = &c.limits;
    in_range(errors, "limits.max_connections", l.max_connections, 1, 1_000_000);
    in_range(errors, "limits.max_connections_per_ip", l.max_connections_per_ip, 1, 1_000_000);
    in_range(errors, "limits.max_pending_connections", l.max_pending_connections, 1, 1_000_000);
    in_range(errors, "limits.max_connect_bytes", l.max_connect_bytes, 128, 268_435_456);
    in_range(errors, "limits.max_inflight_messages", l.max_inflight_messages, 1, 65_535);
    in_range(errors, "limits.max_queued_messages", l.max_queued_messages, 1, 10_000_000);
    in_range(errors, "limits.max_queued_bytes", l.max_queued_bytes, 1024, usize::MAX);
    in_range(errors, "limits.max_queued_bytes_total", l.max_queued_bytes_total, 1024 * 1024, usize::MAX);
    // MQTT's remaining-length field tops out at 268,435,455; 256 MiB covers any packet.
    in_range(errors, "limits.message_size_limit", l.message_size_limit, 1024, 268_435_456);
    if l.max_queued_bytes_total < l.message_size_limit {
        let message = format!(
            "{} is below limits.message_size_limit ({}): the largest message could never be held",
            l.max_queued_bytes_total, l.message_size_limit
        );
        errors.push("limits.max_queued_bytes_total", message);
    }
    in_range(errors, "limits.max_client_id_length", l.max_client_id_length, 23, 65_535);
    in_range(errors, "limits.max_topic_length", l.max_topic_length, 1, 65_535);
    in_range(errors, "limits.max_subscriptions_per_client", l.max_subscriptions_per_client, 1, 1_000_000);
    in_range(errors, "limits.max_filters_per_subscribe", l.max_filters_per_subscribe, 1, 65_535);
    in_range(errors, "limits.max_sessions", l.max_sessions, 1, 10_000_000);
    if l.max_sessions < l.max_connections {
        errors.push("limits.max_sessions", format!("{} is below limits.max_connections", l.max_sessions));
    }
    in_range(errors, "limits.max_keep_alive_secs", usize::from(l.max_keep_alive_secs), 1, 65_535);
    in_range(errors, "limits.max_retained_messages", l.max_retained_messages, 0, 100_000_000);
    in_range(errors, "limits.max_retained_bytes", l.max_retained_bytes, 0, usize::MAX);
    in_range(errors, "limits.max_messages_per_second", l.max_messages_per_second as usize, 0, 10_000_000);
    in_range(errors, "limits.max_connects_per_ip_per_minute", l.max_connects_per_ip_per_minute as usize, 0, 1_000_000);
}

pub(crate) fn in_range(errors: &mut ConfigErrors, path: &str, value: usize, min: usize, max: usize) {
    if value < min || value > max {
        let bound = if max == usize::MAX { format!("at least {min}") } else { format!("between {min} and {max}") };
        errors.push(path, format!("{value} is out of range: must be {bound}"));
    }
}

/// MQTT topic filter syntax: non-empty, `+` fills a whole level, `#` only as the last level.
pub(crate) fn check_filter(filter: &str) -> Result<(), &'static str> {
    if filter.is_empty() {
        return Err("empty");
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || i + 1 != levels.len()) {
            return Err("'#' must be the whole last level");
        }
        if level.contains('+') && *level != "+" {
            return Err("'+' must be a whole level");
        }
    }
    Ok(())
}
