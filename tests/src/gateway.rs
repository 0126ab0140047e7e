//! The security gateway as a test sees it: the audit log (`[security] audit_file`) as
//! an auditor reads it (JSON lines, read whole each time and waited on until a line
//! that matches appears), the refusal counters, and the password files it reads.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The keys every audit line has, in the order the engine writes them.
pub const KEYS: [&str; 9] =
    ["time", "listener", "peer", "client_id", "username", "action", "topic", "reason", "detail"];

/// An audit file in a temporary directory.
pub struct AuditFile {
    pub path: PathBuf,
}

impl AuditFile {
    pub fn in_dir(dir: &Path) -> AuditFile {
        AuditFile { path: dir.join("audit.log") }
    }

    /// Every line, each parsed; panics on a line that is not one JSON object with
    /// exactly [`KEYS`] (a line broken by a hostile string would fail here).
    pub fn lines(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.path).unwrap_or_default();
        text.lines()
            .map(|line| {
                let value: Value =
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("audit line is not JSON ({e}): {line:?}"));
                let keys: Vec<&str> = value.as_object().expect("an object").keys().map(String::as_str).collect();
                let mut expected = KEYS.to_vec();
                expected.sort_unstable();
                let mut sorted = keys.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, expected, "audit line keys: {line}");
                value
            })
            .collect()
    }

    /// Waits for a line with `reason` whose fields include every `(key, value)` of
    /// `fields`, and returns it.
    pub async fn wait_for(&self, reason: &str, fields: &[(&str, &str)]) -> Value {
        let what = format!("an audit line {reason} {fields:?}");
        self.wait_for_line(&what, |line| matches(line, reason, fields)).await
    }

    /// Waits for a line that satisfies `test`, and returns it.
    pub async fn wait_for_line(&self, what: &str, test: impl Fn(&Value) -> bool) -> Value {
        let found = std::cell::RefCell::new(None);
        let what = format!("{what} in {}", self.path.display());
        crate::wait_for(&what, || {
            let line = self.lines().into_iter().find(&test);
            let seen = line.is_some();
            *found.borrow_mut() = line;
            async move { seen }
        })
        .await;
        found.into_inner().unwrap()
    }

    /// The first line with `reason` and `fields`, if there is one yet.
    pub fn find(&self, reason: &str, fields: &[(&str, &str)]) -> Option<Value> {
        self.lines().into_iter().find(|line| matches(line, reason, fields))
    }

    /// How many lines have `reason`.
    pub fn count(&self, reason: &str) -> usize {
        self.lines().iter().filter(|line| line["reason"] == reason).count()
    }
}

fn matches(line: &Value, reason: &str, fields: &[(&str, &str)]) -> bool {
    line["reason"] == reason && fields.iter().all(|(key, value)| line[*key].as_str() == Some(*value))
}

/// The value of `alicia_security_refusals_total` for one listener and reason (0 when
/// it was never counted).
pub async fn refusals(http: std::net::SocketAddr, listener: &str, reason: &str) -> f64 {
    let name = format!("alicia_security_refusals_total{{listener=\"{listener}\",reason=\"{reason}\"}}");
    crate::metric(http, &name).await.unwrap_or(0.0)
}

/// Writes a password file (mosquitto's format, hashed by `alicia-auth`) for `users`.
pub fn write_passwords(path: &Path, users: &[(&str, &str)]) {
    let mut file = alicia_auth::PasswordFile::new();
    for (user, password) in users {
        file.set(user, password.as_bytes()).unwrap();
    }
    std::fs::write(path, file.to_text()).unwrap();
}

/// Credentials for a rumqttc 3.1.1 client.
pub fn v4_login(user: &str, password: &str) -> impl FnOnce(&mut rumqttc::MqttOptions) {
    let (user, password) = (user.to_string(), password.to_string());
    move |o| {
        o.set_credentials(user, password);
    }
}

/// Credentials for a rumqttc 5 client.
pub fn v5_login(user: &str, password: &str) -> impl FnOnce(&mut rumqttc::v5::MqttOptions) {
    let (user, password) = (user.to_string(), password.to_string());
    move |o| {
        o.set_credentials(user, password);
    }
}
