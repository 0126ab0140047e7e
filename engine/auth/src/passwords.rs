//! The `mosquitto_passwd` password file: one `username:hash` line per user.
//!
//! Lines that are blank or start with `#` are kept as they are (the mosquitto broker
//! skips them too). Unlike mosquitto, which drops a line it cannot read and starts
//! anyway, a malformed line here is an error naming its line number, so a typo never
//! silently locks a service out.

use std::path::Path;

use crate::hash::PasswordHash;
use crate::{atomic, AuthError, LineError};

/// The answer to a login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    UnknownUser,
    WrongPassword,
}

/// A password file in memory, with its comments and the order of its lines.
#[derive(Debug, Clone, Default)]
pub struct PasswordFile {
    lines: Vec<Line>,
}

#[derive(Debug, Clone)]
enum Line {
    /// A comment or blank line, written back as it was.
    Other(String),
    /// `encoded` is the hash as read, so an untouched entry is written back byte for byte.
    Entry { user: String, hash: PasswordHash, encoded: String },
}

const WHAT: &str = "password file";

impl PasswordFile {
    /// An empty file.
    pub fn new() -> PasswordFile {
        PasswordFile::default()
    }

    pub fn load(path: &Path) -> Result<PasswordFile, AuthError> {
        let text = read(path)?;
        parse(&text, &path.display().to_string(), false)
    }

    pub fn parse(text: &str) -> Result<PasswordFile, AuthError> {
        parse(text, "<text>", false)
    }

    /// Reads a file of `username:plain-text-password` lines and hashes each password
    /// (`mosquitto_passwd -U`). Unlike `mosquitto_passwd -U`, which hashes the hash of a
    /// line that is already hashed and so breaks it, a line holding a valid `$6$`/`$7$`
    /// hash is kept as it is: running it twice is harmless.
    pub fn upgrade_plain_text(text: &str, origin: &str) -> Result<PasswordFile, AuthError> {
        parse(text, origin, true)
    }

    /// Checks a login. The hash compare is constant time, and an unknown user costs the
    /// same hashing as a known one, so timing tells neither the password nor who exists.
    pub fn check(&self, username: &str, password: &[u8]) -> Verdict {
        match self.find(username) {
            Some(index) => match &self.lines[index] {
                Line::Entry { hash, .. } if hash.verify(password) => Verdict::Accepted,
                _ => Verdict::WrongPassword,
            },
            None => {
                let _ = decoy().verify(password);
                Verdict::UnknownUser
            }
        }
    }

    /// Whether `username` has a line.
    pub fn contains(&self, username: &str) -> bool {
        self.find(username).is_some()
    }

    /// The users, in file order.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().filter_map(|line| match line {
            Line::Entry { user, .. } => Some(user.as_str()),
            Line::Other(_) => None,
        })
    }

    /// Sets `username`'s password (a fresh `$7$` hash), in place if the user exists,
    /// else as a new last line.
    pub fn set(&mut self, username: &str, password: &[u8]) -> Result<(), AuthError> {
        check_username(username)?;
        let hash = PasswordHash::new_pbkdf2(password)?;
        let entry = Line::Entry { user: username.to_string(), encoded: hash.encode(), hash };
        match self.find(username) {
            Some(index) => self.lines[index] = entry,
            None => self.lines.push(entry),
        }
        Ok(())
    }

    /// Removes `username`'s line; false if there was none.
    pub fn remove(&mut self, username: &str) -> bool {
        match self.find(username) {
            Some(index) => {
                self.lines.remove(index);
                true
            }
            None => false,
        }
    }

    /// The file's text: every line in order, each ending in a newline.
    pub fn to_text(&self) -> String {
        let mut text = String::new();
        for line in &self.lines {
            match line {
                Line::Other(other) => text.push_str(other),
                Line::Entry { user, encoded, .. } => {
                    text.push_str(user);
                    text.push(':');
                    text.push_str(encoded);
                }
            }
            text.push('\n');
        }
        text
    }

    /// Writes the file atomically (temp file + rename) with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), AuthError> {
        atomic::write_private(path, self.to_text().as_bytes())
    }

    fn find(&self, username: &str) -> Option<usize> {
        self.lines.iter().position(|line| matches!(line, Line::Entry { user, .. } if user == username))
    }
}

fn read(path: &Path) -> Result<String, AuthError> {
    std::fs::read_to_string(path).map_err(|source| AuthError::Read { path: path.to_path_buf(), source })
}

fn parse(text: &str, origin: &str, hash_plain: bool) -> Result<PasswordFile, AuthError> {
    let mut file = PasswordFile::default();
    let mut errors = Vec::new();
    let mut seen = std::collections::HashMap::new();
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let trimmed = raw.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            file.lines.push(Line::Other(raw.to_string()));
            continue;
        }
        match parse_entry(raw, hash_plain) {
            Ok(line) => {
                if let Line::Entry { user, .. } = &line {
                    if let Some(first) = seen.insert(user.clone(), number) {
                        errors.push(LineError {
                            line: number,
                            message: format!("user {user:?} is already on line {first}"),
                        });
                        continue;
                    }
                }
                file.lines.push(line);
            }
            Err(message) => errors.push(LineError { line: number, message }),
        }
    }
    if errors.is_empty() {
        Ok(file)
    } else {
        Err(AuthError::BadLines { what: WHAT, origin: origin.to_string(), errors })
    }
}

fn parse_entry(raw: &str, hash_plain: bool) -> Result<Line, String> {
    let Some((user, secret)) = raw.split_once(':') else {
        return Err("expected username:hash".into());
    };
    if user.is_empty() {
        return Err("empty username".into());
    }
    let hash = match PasswordHash::parse(secret) {
        Ok(hash) => hash,
        Err(_) if hash_plain => PasswordHash::new_pbkdf2(secret.as_bytes()).map_err(|e| e.to_string())?,
        Err(message) => return Err(message),
    };
    Ok(Line::Entry { user: user.to_string(), encoded: hash.encode(), hash })
}

/// The rules `mosquitto_passwd` enforces, plus what the line format itself cannot hold.
fn check_username(name: &str) -> Result<(), AuthError> {
    let reason = if name.is_empty() {
        "empty"
    } else if name.contains(':') {
        "it contains ':', the file's separator"
    } else if name.contains(['\n', '\r']) {
        "it contains a line break"
    } else if name.trim_start().starts_with('#') {
        "it starts with '#', which the file reads as a comment"
    } else {
        return Ok(());
    };
    Err(AuthError::InvalidUsername { name: name.to_string(), reason })
}

/// A fixed hash verified for unknown users so their check costs what a known user's does.
fn decoy() -> &'static PasswordHash {
    static DECOY: std::sync::OnceLock<PasswordHash> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| PasswordHash::Pbkdf2Sha512 {
        iterations: crate::hash::PBKDF2_ITERATIONS,
        salt: vec![0; 12],
        hash: vec![0; 64],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "alice:$7$101$FuQc9F/N84gcE3Sy$SSxDc+MvSV+sbIQhxIMLb3YQwDupR2cq09tdjHZCHreVi5EiWt8q5RMBU7dYI2CttmI9QX9ftjCX4i3yPaLokQ==";
    const BOB: &str = "bob:$6$tvunUbPoacXsOMxv$VCackRT+yY7eTmVH4f116Ci4EY4YPP85O67gPzVcRHWDDZzHDeQ40ezhBSQKl91nlQXdZZLrs0MYdz1A9kw79A==";

    #[test]
    fn checks_logins() {
        let file = PasswordFile::parse(&format!("# users\n\n{ALICE}\r\n{BOB}\n")).unwrap();
        assert_eq!(file.check("alice", b"pass"), Verdict::Accepted);
        assert_eq!(file.check("bob", b"pass"), Verdict::Accepted);
        assert_eq!(file.check("alice", b"nope"), Verdict::WrongPassword);
        assert_eq!(file.check("carol", b"pass"), Verdict::UnknownUser);
        assert_eq!(file.users().collect::<Vec<_>>(), ["alice", "bob"]);
    }

    #[test]
    fn reports_every_bad_line() {
        let text = format!("{ALICE}\nno colon here\n:$7$1$AAAA$AAAA\nx:$5$abc$def\n# fine\n{ALICE}\ny:plain\n");
        let err = PasswordFile::parse(&text).unwrap_err();
        let lines: Vec<usize> = err.line_errors().iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4, 6, 7], "{err}");
        assert_eq!(err.error_type(), "bad_lines");
        assert!(err.to_string().contains("line 4: unknown hash scheme $5$"), "{err}");
    }

    #[test]
    fn edits_keep_order_and_comments() {
        let mut file = PasswordFile::parse(&format!("# header\n{ALICE}\n\n{BOB}\n")).unwrap();
        file.set("alice", b"new").unwrap();
        file.set("carol", b"c").unwrap();
        assert!(file.remove("bob"));
        assert!(!file.remove("bob"));
        let text = file.to_text();
        let kinds: Vec<&str> = text.lines().map(|l| l.split(':').next().unwrap()).collect();
        assert_eq!(kinds, ["# header", "alice", "", "carol"]);
        let again = PasswordFile::parse(&text).unwrap();
        assert_eq!(again.check("alice", b"new"), Verdict::Accepted);
        assert_eq!(again.check("alice", b"pass"), Verdict::WrongPassword);
        assert_eq!(again.check("carol", b"c"), Verdict::Accepted);
        assert_eq!(again.check("bob", b"pass"), Verdict::UnknownUser);
    }

    #[test]
    fn untouched_entries_round_trip_exactly() {
        let text = format!("# c\n{BOB}\n{ALICE}\n");
        assert_eq!(PasswordFile::parse(&text).unwrap().to_text(), text);
    }

    #[test]
    fn refuses_usernames_the_file_cannot_hold() {
        let mut file = PasswordFile::new();
        for bad in ["", "a:b", "a\nb", "#x"] {
            let err = file.set(bad, b"p").unwrap_err();
            assert_eq!(err.error_type(), "invalid_username", "{bad:?}");
        }
    }

    #[test]
    fn upgrades_plain_text_once() {
        let plain = format!("# old\nsvc:hunter2\n{ALICE}\n");
        let file = PasswordFile::upgrade_plain_text(&plain, "<test>").unwrap();
        assert_eq!(file.check("svc", b"hunter2"), Verdict::Accepted);
        assert_eq!(file.check("alice", b"pass"), Verdict::Accepted, "an existing hash is kept");
        let twice = PasswordFile::upgrade_plain_text(&file.to_text(), "<test>").unwrap();
        assert_eq!(twice.to_text(), file.to_text());
    }

    #[test]
    fn saves_atomically_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("passwords");
        std::fs::write(&path, "old").unwrap();
        let mut file = PasswordFile::new();
        file.set("u", b"p").unwrap();
        file.save(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(PasswordFile::load(&path).unwrap().check("u", b"p"), Verdict::Accepted);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temp file left");
    }
}
