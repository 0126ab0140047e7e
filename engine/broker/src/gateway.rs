//! The security gateway every door and session asks: `[security]`'s password and ACL
//! rules (swapped whole on SIGHUP), the audit log, the failed-login back-off,
//! connection attempts per address, signed envelopes on the topics that require
//! them, and the alerts those refusals raise.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use alicia_audit::{AuditAction, AuditConfig, AuditLog, AuditRecord};
use alicia_config::{AliciaConfig, SigningSection};
use alicia_ratelimit::{AttemptLimiter, AttemptLimiterConfig, LoginBackoff, LoginBackoffConfig};
use alicia_signing::{Keyring, SignatureError, Verifier};
use arc_swap::{ArcSwap, ArcSwapOption};
use bytes::Bytes;

use crate::metrics::{BrokerMetrics, SecurityRefusal};
use crate::security::{Rules, Security};

/// Alerts waiting for the engine to publish them; past this they are dropped (the
/// refusals are still counted and audited).
const ALERT_QUEUE: usize = 256;
/// Addresses whose connection attempts are tracked at once.
const TRACKED_ADDRESSES: usize = 10_000;

/// Who did something: what the audit log and the alerts name.
#[derive(Debug, Clone)]
pub(crate) struct Who {
    pub listener: &'static str,
    pub peer: SocketAddr,
    pub client_id: Option<String>,
    pub username: Option<String>,
}

/// A refusal worth telling operators about on `alicia/monitoring/alerts`.
#[derive(Debug, Clone)]
pub struct SecurityAlert {
    pub reason: &'static str,
    pub listener: &'static str,
    pub peer: SocketAddr,
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub topic: Option<String>,
}

/// Why a login was refused before its password was looked at.
pub(crate) enum LoginRefusal {
    Refused(SecurityRefusal),
    /// The username failed too often and is waiting out its back-off.
    BackOff,
}

pub(crate) struct Gateway {
    /// `[security]` in force; a config update may swap it (`reload_with`).
    security_section: ArcSwap<alicia_config::SecuritySection>,
    rules: ArcSwap<Security>,
    audit: AuditLog,
    logins: LoginBackoff,
    /// Connection attempts per address; swapped whole when the rate changes.
    attempts: ArcSwapOption<AttemptLimiter>,
    signing: Option<Signing>,
    alerts: (flume::Sender<SecurityAlert>, flume::Receiver<SecurityAlert>),
    /// Bumped by every reload, so cached rules know to rebuild.
    generation: AtomicU64,
}

/// `[security.signing]` at run time.
struct Signing {
    verifier: Verifier,
    require: Vec<String>,
    sign_as: Option<String>,
    key_file: std::path::PathBuf,
}

impl Gateway {
    /// Reads every file `[security]` names; a missing or broken one stops start-up.
    pub(crate) fn load(config: &AliciaConfig) -> Result<Gateway, crate::BrokerError> {
        let section = &config.security;
        let audit = match &section.audit_file {
            Some(path) => {
                // `logs/` of a fresh checkout: made here, so the first start needs no step.
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| crate::BrokerError::Audit(format!("cannot create {}: {e}", dir.display())))?;
                }
                let mut audit = AuditConfig::new(path.clone());
                audit.max_bytes = section.audit_max_bytes;
                audit.keep = section.audit_keep;
                AuditLog::open(audit).map_err(|e| crate::BrokerError::Audit(e.to_string()))?
            }
            None => AuditLog::disabled(),
        };
        let logins = LoginBackoff::new(LoginBackoffConfig {
            free_failures: section.login_failures_before_backoff,
            max: Duration::from_millis(section.login_backoff_max_ms),
            ..LoginBackoffConfig::default()
        });
        let limits = &config.limits;
        let attempts = attempt_limiter(limits.max_connects_per_ip_per_minute, limits.rate_limit_loopback);
        let signing = section.signing.as_ref().map(Signing::load).transpose()?;
        Ok(Gateway {
            security_section: ArcSwap::from_pointee(section.clone()),
            rules: ArcSwap::from_pointee(Security::load(section)?),
            audit,
            logins,
            attempts: ArcSwapOption::new(attempts.map(Arc::new)),
            signing,
            alerts: flume::bounded(ALERT_QUEUE),
            generation: AtomicU64::new(0),
        })
    }

    /// The password and ACL rules in force.
    pub(crate) fn security(&self) -> arc_swap::Guard<Arc<Security>> {
        self.rules.load()
    }

    /// Re-reads the password file, the ACL file and the signing keys. All or nothing:
    /// when any is broken the old rules stay and the error names every bad line.
    pub(crate) fn reload(&self) -> Result<(), String> {
        self.reload_with(&self.security_section.load())
    }

    /// [`Gateway::reload`] under another `[security]` (a config update): its files and
    /// `allow_anonymous`. All or nothing: the section is kept only when every file reads.
    pub(crate) fn reload_with(&self, section: &alicia_config::SecuritySection) -> Result<(), String> {
        let security = Security::load(section).map_err(|e| e.to_string())?;
        let keyring = match &self.signing {
            Some(signing) => Some(signing.reload_keyring()?),
            None => None,
        };
        self.security_section.store(Arc::new(section.clone()));
        self.rules.store(Arc::new(security));
        if let (Some(signing), Some(keyring)) = (&self.signing, keyring) {
            signing.verifier.set_keyring(keyring);
        }
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// How many reloads there have been.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The ACL username of an in-process client called `name`.
    pub(crate) fn service_user(&self, name: &str) -> String {
        self.security_section.load().service_users.get(name).cloned().unwrap_or_else(|| name.to_string())
    }

    /// A client's ACL rules under the rules in force.
    pub(crate) fn rules_for(&self, username: Option<&str>, client_id: &str) -> Rules {
        self.security().rules(username, client_id)
    }

    /// The password check with the failed-login back-off around it.
    pub(crate) fn login(&self, username: Option<&str>, password: &[u8], now: Instant) -> Result<(), LoginRefusal> {
        let Some(user) = username else {
            return self.security().login(None, password).map_err(LoginRefusal::Refused);
        };
        if let Err(wait) = self.logins.check(user, now) {
            tracing::debug!(user, ?wait, "login during back-off");
            return Err(LoginRefusal::BackOff);
        }
        match self.security().login(Some(user), password) {
            Ok(()) => {
                self.logins.succeeded(user);
                Ok(())
            }
            Err(refusal) => {
                if matches!(
                    refusal,
                    SecurityRefusal::WrongPassword | SecurityRefusal::UnknownUser | SecurityRefusal::BadToken
                ) {
                    self.logins.failed(user, now);
                }
                Err(LoginRefusal::Refused(refusal))
            }
        }
    }

    /// One more connection attempt from `ip`; `Err` when past its rate.
    pub(crate) fn connect_attempt(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        match &*self.attempts.load() {
            Some(attempts) => attempts.attempt(ip, now),
            None => Ok(()),
        }
    }

    /// Another `max_connects_per_ip_per_minute` / `rate_limit_loopback` (a config
    /// update): every address starts again with a full allowance under the new rate.
    pub(crate) fn set_connect_rate(&self, per_minute: u32, rate_limit_loopback: bool) {
        self.attempts.store(attempt_limiter(per_minute, rate_limit_loopback).map(Arc::new));
    }

    /// Counts, audits and (for what operators must see) raises a refusal.
    pub(crate) fn refused(
        &self,
        metrics: &BrokerMetrics,
        refusal: SecurityRefusal,
        who: &Who,
        action: AuditAction,
        topic: Option<&str>,
    ) {
        metrics.security_refused(refusal);
        let mut record = AuditRecord::new(who.listener, who.peer, action, refusal.as_label());
        if let Some(id) = &who.client_id {
            record = record.with_client_id(id.as_str());
        }
        if let Some(user) = &who.username {
            record = record.with_username(user.as_str());
        }
        if let Some(topic) = topic {
            record = record.with_topic(topic);
        }
        self.audit.record(record);
        if refusal.raises_alert() {
            let alert = SecurityAlert {
                reason: refusal.as_label(),
                listener: who.listener,
                peer: who.peer,
                client_id: who.client_id.clone(),
                username: who.username.clone(),
                topic: topic.map(str::to_string),
            };
            let _ = self.alerts.0.try_send(alert);
        }
    }

    /// The alerts refusals raise, for the engine to publish.
    pub(crate) fn alerts(&self) -> flume::Receiver<SecurityAlert> {
        self.alerts.1.clone()
    }

    /// Waits (bounded) until every audit record so far is on disk.
    pub(crate) fn flush_audit(&self, limit: Duration) {
        let _ = self.audit.flush_blocking(limit);
    }

    /// Whether messages on `topic` must be signed.
    pub(crate) fn requires_signature(&self, topic: &str) -> bool {
        self.signing.as_ref().is_some_and(|s| s.require.iter().any(|f| crate::topic::matches(topic, f)))
    }

    /// Checks a signed message; what passes is forwarded as it came (an encrypted one
    /// decrypted).
    pub(crate) fn verify(&self, payload: &Bytes) -> Result<Bytes, SignatureError> {
        let Some(signing) = &self.signing else { return Ok(payload.clone()) };
        let verified = signing.verifier.verify(payload, SystemTime::now())?;
        Ok(match verified.bytes {
            std::borrow::Cow::Borrowed(_) => payload.clone(),
            std::borrow::Cow::Owned(bytes) => Bytes::from(bytes),
        })
    }

    /// Signs what the engine itself publishes on a topic that requires it; `None` when
    /// it needs no signature (or there is no key to sign with, which start-up refused).
    pub(crate) fn sign_own(&self, topic: &str, payload: &[u8]) -> Option<Result<Vec<u8>, String>> {
        let signing = self.signing.as_ref()?;
        let key_id = signing.sign_as.as_deref()?;
        if !self.requires_signature(topic) || payload.is_empty() {
            return None;
        }
        let keyring = signing.verifier.keyring();
        Some(alicia_signing::sign(payload, key_id, &keyring).map_err(|e| e.to_string()))
    }
}

impl Signing {
    fn load(section: &SigningSection) -> Result<Signing, crate::BrokerError> {
        let keyring = Keyring::load(&section.key_file).map_err(|e| signing_error(&section.key_file, e))?;
        if let Some(key) = &section.sign_as {
            if !keyring.contains(key) {
                let why = format!("sign_as = {key:?} is not a key of {}", section.key_file.display());
                return Err(crate::BrokerError::Signing(why));
            }
        }
        Ok(Signing {
            verifier: Verifier::new(keyring, Duration::from_secs(section.window_seconds), section.replay_capacity),
            require: section.require.clone(),
            sign_as: section.sign_as.clone(),
            key_file: section.key_file.clone(),
        })
    }
}

impl Signing {
    /// The key file again, refused as start-up refuses it when it lacks the key the
    /// engine signs its own messages with (they could no longer be signed at all).
    fn reload_keyring(&self) -> Result<Keyring, String> {
        let keyring = Keyring::load(&self.key_file).map_err(|e| e.to_string())?;
        if let Some(key) = &self.sign_as {
            if !keyring.contains(key) {
                return Err(format!("sign_as = {key:?} is not a key of {}", self.key_file.display()));
            }
        }
        Ok(keyring)
    }
}

fn signing_error(path: &Path, e: impl std::fmt::Display) -> crate::BrokerError {
    crate::BrokerError::Signing(format!("{}: {e}", path.display()))
}

impl SecurityRefusal {
    /// The refusal a failed signature check stands for.
    pub(crate) fn from_signature(error: &SignatureError) -> SecurityRefusal {
        match error.error_type() {
            "unsigned" => SecurityRefusal::Unsigned,
            "unknown_key" => SecurityRefusal::UnknownKey,
            "bad_signature" => SecurityRefusal::BadSignature,
            "stale" => SecurityRefusal::StaleMessage,
            "replayed" => SecurityRefusal::Replayed,
            "decrypt_failed" => SecurityRefusal::DecryptFailed,
            _ => SecurityRefusal::SignatureMalformed,
        }
    }

    /// Refusals of a signed envelope.
    pub(crate) fn is_signature(self) -> bool {
        use SecurityRefusal::*;
        matches!(
            self,
            Unsigned | UnknownKey | BadSignature | StaleMessage | Replayed | DecryptFailed | SignatureMalformed
        )
    }

    /// Refusals that mean someone is trying something, not a client misconfigured once.
    fn raises_alert(self) -> bool {
        use SecurityRefusal::*;
        matches!(
            self,
            Unsigned
                | UnknownKey
                | BadSignature
                | StaleMessage
                | Replayed
                | DecryptFailed
                | SignatureMalformed
                | LoginBackoff
                | CertificateRevoked
                | ConnectRate
                | MessageRate
                | ByteRate
        )
    }
}

/// The per-address limiter for a rate; none when it is 0 (no limit).
fn attempt_limiter(per_minute: u32, rate_limit_loopback: bool) -> Option<AttemptLimiter> {
    (per_minute > 0).then(|| {
        AttemptLimiter::new(AttemptLimiterConfig {
            per_minute,
            max_tracked: TRACKED_ADDRESSES,
            exempt_loopback: !rate_limit_loopback,
            ..AttemptLimiterConfig::default()
        })
    })
}
