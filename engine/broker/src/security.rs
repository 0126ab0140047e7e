//! Who may connect and what each client may touch: `[security]` of `alicia.toml`, with
//! mosquitto's password and ACL files (`alicia-auth`). The door checks the CONNECT's
//! credentials and its will; the session checks every SUBSCRIBE, every PUBLISH and
//! every delivery (retained messages and shared subscriptions included) against the
//! client's rules, worked out once at CONNECT.

use std::sync::Arc;

use std::time::SystemTime;

use alicia_auth::device_token::{self, TokenError, TokenKey};
use alicia_auth::{Acl, AuthError, CompiledRules, Identity, PasswordFile, Verdict};
use alicia_config::SecuritySection;
use rumqttd::protocol::ConnectReturnCode;

use crate::metrics::SecurityRefusal;

/// One client's ACL rules; `None` when no ACL is configured (everything allowed).
pub(crate) type Rules = Option<Arc<CompiledRules>>;

pub(crate) struct Security {
    allow_anonymous: bool,
    passwords: Option<PasswordFile>,
    acl: Option<Acl>,
    /// Device tokens (`POST /auth/device`) are accepted as passwords when set.
    tokens: Option<TokenKey>,
}

impl Security {
    /// Reads the files `section` names; a file that is missing or has a bad line keeps
    /// the engine from starting, with every bad line named.
    pub(crate) fn load(section: &SecuritySection) -> Result<Security, AuthError> {
        Ok(Security {
            allow_anonymous: section.allow_anonymous,
            passwords: section.password_file.as_deref().map(PasswordFile::load).transpose()?,
            acl: section.acl_file.as_deref().map(Acl::load).transpose()?,
            tokens: section.token_key_file.as_deref().map(TokenKey::load).transpose()?,
        })
    }

    /// The door's decision on a CONNECT's credentials. mosquitto's rules: without a
    /// username, `allow_anonymous` decides; with one, the password file must know it
    /// and its password (a username is taken as given when there is no file and
    /// anonymous clients are allowed).
    pub(crate) fn login(&self, username: Option<&str>, password: &[u8]) -> Result<(), SecurityRefusal> {
        let Some(username) = username else {
            return if self.allow_anonymous { Ok(()) } else { Err(SecurityRefusal::Anonymous) };
        };
        // A device token for this username is a credential of its own; anything that is
        // not a token at all goes on to the password file.
        if let (Some(key), Ok(token)) = (&self.tokens, std::str::from_utf8(password)) {
            match device_token::verify(key, token, username, SystemTime::now()) {
                Ok(_) => return Ok(()),
                Err(TokenError::Malformed(_)) => {}
                Err(TokenError::Expired { .. }) => return Err(SecurityRefusal::TokenExpired),
                Err(_) => return Err(SecurityRefusal::BadToken),
            }
        }
        match &self.passwords {
            None if self.allow_anonymous => Ok(()),
            None => Err(SecurityRefusal::UnknownUser),
            Some(file) => match file.check(username, password) {
                Verdict::Accepted => Ok(()),
                Verdict::UnknownUser => Err(SecurityRefusal::UnknownUser),
                Verdict::WrongPassword => Err(SecurityRefusal::WrongPassword),
            },
        }
    }

    pub(crate) fn rules(&self, username: Option<&str>, client_id: &str) -> Rules {
        let acl = self.acl.as_ref()?;
        let who = match username {
            Some(user) => Identity::user(user, client_id),
            None => Identity::anonymous(client_id),
        };
        Some(Arc::new(acl.rules_for(&who)))
    }
}

/// The CONNACK code of a refused CONNECT (3.1.1 maps both to its 0x04 / 0x05).
pub(crate) fn connack_code(refusal: SecurityRefusal) -> ConnectReturnCode {
    match refusal {
        SecurityRefusal::UnknownUser
        | SecurityRefusal::WrongPassword
        | SecurityRefusal::TokenExpired
        | SecurityRefusal::BadToken => ConnectReturnCode::BadUserNamePassword,
        SecurityRefusal::LoginBackoff | SecurityRefusal::ConnectRate => ConnectReturnCode::ConnectionRateExceeded,
        _ => ConnectReturnCode::NotAuthorized,
    }
}

pub(crate) fn may_publish(rules: &Rules, topic: &str) -> bool {
    rules.as_ref().is_none_or(|r| r.can_publish(topic))
}

pub(crate) fn may_read(rules: &Rules, topic: &str) -> bool {
    rules.as_ref().is_none_or(|r| r.can_read(topic))
}

pub(crate) fn may_subscribe(rules: &Rules, filter: &str) -> bool {
    rules.as_ref().is_none_or(|r| r.can_subscribe(filter))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn security(allow_anonymous: bool, passwords: Option<&str>) -> Security {
        let mut file = PasswordFile::new();
        if let Some(p) = passwords {
            file.set("kitchen", p.as_bytes()).unwrap();
        }
        Security { allow_anonymous, passwords: passwords.map(|_| file), acl: None, tokens: None }
    }

    #[test]
    fn logins_follow_mosquitto() {
        let open = security(true, None);
        assert_eq!(open.login(None, b""), Ok(()));
        assert_eq!(open.login(Some("anyone"), b"x"), Ok(()));
        let closed = security(false, Some("secret"));
        assert_eq!(closed.login(None, b""), Err(SecurityRefusal::Anonymous));
        assert_eq!(closed.login(Some("kitchen"), b"secret"), Ok(()));
        assert_eq!(closed.login(Some("kitchen"), b"wrong"), Err(SecurityRefusal::WrongPassword));
        assert_eq!(closed.login(Some("nobody"), b"secret"), Err(SecurityRefusal::UnknownUser));
        // A password file applies to named clients even when anonymous ones may connect.
        let mixed = security(true, Some("secret"));
        assert_eq!(mixed.login(None, b""), Ok(()));
        assert_eq!(mixed.login(Some("kitchen"), b"wrong"), Err(SecurityRefusal::WrongPassword));
        assert_eq!(security(false, None).login(Some("kitchen"), b"x"), Err(SecurityRefusal::UnknownUser));
    }

    #[test]
    fn codes_are_the_specs() {
        assert_eq!(connack_code(SecurityRefusal::WrongPassword), ConnectReturnCode::BadUserNamePassword);
        assert_eq!(connack_code(SecurityRefusal::Anonymous), ConnectReturnCode::NotAuthorized);
        assert_eq!(connack_code(SecurityRefusal::WillDenied), ConnectReturnCode::NotAuthorized);
    }
}
