//! The mosquitto `acl_file`: which topics each client may publish to and read.
//!
//! The format (`man mosquitto.conf`, `acl_file`):
//! - `topic [read|write|readwrite|deny] <filter>`: no access word means readwrite.
//!   Lines before the first `user` line are the anonymous clients' rules.
//! - `user <name>` starts that user's rules; a name may appear in several sections.
//! - `pattern [access] <filter>` applies to every client, anywhere in the file, with
//!   `%u` replaced by the username and `%c` by the client id.
//! - `#` comments and blank lines.
//!
//! How a check is decided, as mosquitto 2.0.11 does it (confirmed by running it; see
//! `tests/mosquitto_acl.rs`):
//! 1. the client's own rules (its user section, or the anonymous section): a matching
//!    `deny` refuses; otherwise a matching rule with the access asked grants;
//! 2. then the patterns, in the same way (so a user's grant beats a pattern's deny, and
//!    a user's deny beats a pattern's grant);
//! 3. otherwise refused: only what is listed is allowed.
//!
//! Patterns are skipped for a client whose username or client id holds `+` or `#`, so
//! nobody widens a pattern with a wildcard (`/` is allowed, as in mosquitto 2.0). A
//! pattern with `%u` does not apply to an anonymous client. Users without a section get
//! no rules of their own (the anonymous section is not theirs).
//!
//! SUBSCRIBE: mosquitto 2.0.11 grants every subscription and filters each message by
//! read access at delivery. [`CompiledRules::can_subscribe`] refuses only a filter that
//! could never deliver anything (no read grant overlaps it, or a deny covers all of
//! it), so the client learns it at SUBACK; what is delivered is the same as mosquitto,
//! because [`CompiledRules::can_read`] on the concrete topic stays the authority.
//!
//! Stricter than mosquitto: an unknown keyword, access word or invalid filter is an error
//! with its line number here too, but every bad line is reported at once.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use crate::topic::{covers, filter_problem, matches, overlaps};
use crate::{AuthError, LineError};

/// What a rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
    ReadWrite,
    /// Refuses both, ahead of any grant in the same list.
    Deny,
}

impl Access {
    fn reads(self) -> bool {
        matches!(self, Access::Read | Access::ReadWrite)
    }
    fn writes(self) -> bool {
        matches!(self, Access::Write | Access::ReadWrite)
    }
}

/// Who is asking: the username of the CONNECT (`None` for anonymous) and the client id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub username: Option<String>,
    pub client_id: String,
}

impl Identity {
    pub fn anonymous(client_id: &str) -> Identity {
        Identity { username: None, client_id: client_id.to_string() }
    }
    pub fn user(username: &str, client_id: &str) -> Identity {
        Identity { username: Some(username.to_string()), client_id: client_id.to_string() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    access: Access,
    filter: Box<str>,
}

/// A parsed ACL file. Rule lists are kept denies first, the order they are checked in.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    anonymous: Arc<[Rule]>,
    users: HashMap<String, Arc<[Rule]>>,
    patterns: Vec<Rule>,
}

/// One client's rules, worked out once (at CONNECT) for the per-message checks, which
/// then neither allocate nor substitute.
#[derive(Debug, Clone)]
pub struct CompiledRules {
    own: Arc<[Rule]>,
    patterns: Vec<Rule>,
}

const WHAT: &str = "acl file";

impl Acl {
    pub fn load(path: &Path) -> Result<Acl, AuthError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| AuthError::Read { path: path.to_path_buf(), source })?;
        parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str) -> Result<Acl, AuthError> {
        parse(text, "<text>")
    }

    /// The users that have a section, in no particular order.
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }

    /// `who`'s rules with the patterns filled in; keep it for the client's session.
    pub fn rules_for(&self, who: &Identity) -> CompiledRules {
        let own = match &who.username {
            Some(name) => self.users.get(name).cloned().unwrap_or_else(|| Arc::from([])),
            None => self.anonymous.clone(),
        };
        let dangerous = |s: &str| s.contains(['+', '#']);
        let patterns = if who.username.as_deref().is_some_and(dangerous) || dangerous(&who.client_id) {
            Vec::new()
        } else {
            self.patterns.iter().filter_map(|rule| substitute(rule, who)).collect()
        };
        CompiledRules { own, patterns }
    }

    /// One-off check; a session should keep [`Acl::rules_for`] instead.
    pub fn can_publish(&self, who: &Identity, topic: &str) -> bool {
        self.rules_for(who).can_publish(topic)
    }

    /// One-off check; a session should keep [`Acl::rules_for`] instead.
    pub fn can_read(&self, who: &Identity, topic: &str) -> bool {
        self.rules_for(who).can_read(topic)
    }

    /// One-off check; a session should keep [`Acl::rules_for`] instead.
    pub fn can_subscribe(&self, who: &Identity, filter: &str) -> bool {
        self.rules_for(who).can_subscribe(filter)
    }
}

impl CompiledRules {
    /// May the client PUBLISH to the concrete `topic`?
    pub fn can_publish(&self, topic: &str) -> bool {
        self.decide(topic, Access::writes)
    }

    /// May a message on the concrete `topic` be delivered to the client?
    pub fn can_read(&self, topic: &str) -> bool {
        self.decide(topic, Access::reads)
    }

    /// Could a subscription to `filter` ever deliver anything? See the module doc.
    pub fn can_subscribe(&self, filter: &str) -> bool {
        if filter_problem(filter).is_some() {
            return false;
        }
        for rule in self.rules() {
            if rule.access == Access::Deny {
                if covers(&rule.filter, filter) {
                    return false;
                }
            } else if rule.access.reads() && overlaps(&rule.filter, filter) {
                return true;
            }
        }
        false
    }

    fn decide(&self, topic: &str, wanted: fn(Access) -> bool) -> bool {
        for rule in self.rules() {
            if matches(&rule.filter, topic) {
                if rule.access == Access::Deny {
                    return false;
                }
                if wanted(rule.access) {
                    return true;
                }
            }
        }
        false
    }

    fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.own.iter().chain(self.patterns.iter())
    }
}

/// Fills in `%u` and `%c`; `None` when the pattern needs a username the client lacks.
/// One pass over the template, so a value holding `%c` or `%u` is never substituted again.
fn substitute(rule: &Rule, who: &Identity) -> Option<Rule> {
    if rule.filter.contains("%u") && who.username.is_none() {
        return None;
    }
    let mut out = String::with_capacity(rule.filter.len() + who.client_id.len());
    let mut rest: &str = &rule.filter;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("%c") {
            out.push_str(&who.client_id);
            rest = after;
        } else if let (Some(after), Some(name)) = (tail.strip_prefix("%u"), who.username.as_deref()) {
            out.push_str(name);
            rest = after;
        } else {
            out.push('%');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Some(Rule { access: rule.access, filter: out.into() })
}

fn parse(text: &str, origin: &str) -> Result<Acl, AuthError> {
    let mut anonymous = Vec::new();
    let mut users: HashMap<String, Vec<Rule>> = HashMap::new();
    let mut patterns = Vec::new();
    let mut current: Option<String> = None;
    let mut errors = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (keyword, rest) = split_word(line);
        let result = match keyword {
            "user" if rest.is_empty() => Err("missing username".to_string()),
            "user" => {
                current = Some(rest.to_string());
                users.entry(rest.to_string()).or_default();
                Ok(())
            }
            "topic" | "pattern" => parse_rule(rest).map(|rule| match (keyword, &current) {
                ("pattern", _) => patterns.push(rule),
                (_, Some(user)) => users.entry(user.clone()).or_default().push(rule),
                (_, None) => anonymous.push(rule),
            }),
            other => Err(format!("unknown keyword {other:?} (expected user, topic or pattern)")),
        };
        if let Err(message) = result {
            errors.push(LineError { line: index + 1, message });
        }
    }
    if !errors.is_empty() {
        return Err(AuthError::BadLines { what: WHAT, origin: origin.to_string(), errors });
    }
    Ok(Acl {
        anonymous: denies_first(anonymous),
        users: users.into_iter().map(|(user, rules)| (user, denies_first(rules))).collect(),
        patterns: denies_first(patterns).to_vec(),
    })
}

/// `[access] <filter>`; a filter may hold spaces when the access word is given.
fn parse_rule(rest: &str) -> Result<Rule, String> {
    if rest.is_empty() {
        return Err("empty topic".into());
    }
    let (first, remainder) = split_word(rest);
    let (access, filter) = if remainder.is_empty() {
        (Access::ReadWrite, first)
    } else {
        let access = match first {
            "read" => Access::Read,
            "write" => Access::Write,
            "readwrite" => Access::ReadWrite,
            "deny" => Access::Deny,
            other => return Err(format!("invalid access {other:?} (expected read, write, readwrite or deny)")),
        };
        (access, remainder)
    };
    if let Some(problem) = filter_problem(filter) {
        return Err(format!("{problem}: {filter:?}"));
    }
    Ok(Rule { access, filter: filter.into() })
}

fn split_word(text: &str) -> (&str, &str) {
    match text.split_once(char::is_whitespace) {
        Some((word, rest)) => (word, rest.trim_start()),
        None => (text, ""),
    }
}

/// Stable: grants keep their file order behind the denies.
fn denies_first(mut rules: Vec<Rule>) -> Arc<[Rule]> {
    rules.sort_by_key(|rule| rule.access != Access::Deny);
    rules.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# anonymous clients
topic read public/#
topic deny public/secret

user alice
topic readwrite a/b/#
topic read r/+/x
topic deny a/b/secret
topic write w
topic $SYS/broker/#

user carol
topic #
topic deny c/secret/#

user bo/b

pattern readwrite dev/%u/#
pattern read cid/%c
pattern deny dev/%u/locked
pattern write out/%c/%u
";

    fn acl() -> Acl {
        Acl::parse(FILE).unwrap()
    }

    #[test]
    fn publish_and_read() {
        let acl = acl();
        let alice = Identity::user("alice", "c1");
        let anon = Identity::anonymous("c2");
        // (who, topic, can_publish, can_read)
        let cases: &[(&Identity, &str, bool, bool)] = &[
            (&alice, "a/b/c", true, true),
            (&alice, "a/b", true, true),
            (&alice, "a/b/secret", false, false),
            (&alice, "a/x", false, false),
            (&alice, "r/q/x", false, true),
            (&alice, "w", true, false),
            (&alice, "$SYS/broker/uptime", true, true),
            (&alice, "public/x", false, false),
            (&alice, "dev/alice/1", true, true),
            (&alice, "dev/alice/locked", false, false),
            (&alice, "dev/bob/1", false, false),
            (&alice, "cid/c1", false, true),
            (&alice, "cid/c2", false, false),
            (&alice, "out/c1/alice", true, false),
            (&anon, "public/x", false, true),
            (&anon, "public/secret", false, false),
            (&anon, "cid/c2", false, true),
            (&anon, "out/c2/", false, false),
            (&anon, "dev//x", false, false),
        ];
        for (who, topic, publish, read) in cases {
            assert_eq!(acl.can_publish(who, topic), *publish, "publish {who:?} {topic}");
            assert_eq!(acl.can_read(who, topic), *read, "read {who:?} {topic}");
        }
    }

    #[test]
    fn wildcard_rules_never_reach_dollar_topics() {
        let acl = acl();
        let carol = Identity::user("carol", "c");
        assert!(acl.can_read(&carol, "anything/at/all"));
        assert!(!acl.can_read(&carol, "$SYS/broker/uptime"));
        assert!(!acl.can_publish(&carol, "$x/y"));
        assert!(!acl.can_read(&carol, "c/secret"), "a deny of c/secret/# covers its parent");
    }

    #[test]
    fn user_grant_beats_pattern_deny_and_user_deny_beats_pattern_grant() {
        let acl = Acl::parse("user carol\ntopic #\nuser alice\ntopic deny dev/alice/private\npattern readwrite dev/%u/#\npattern deny dev/%u/locked\n").unwrap();
        assert!(acl.can_read(&Identity::user("carol", "c"), "dev/carol/locked"));
        assert!(!acl.can_read(&Identity::user("alice", "c"), "dev/alice/private"));
        assert!(!acl.can_read(&Identity::user("alice", "c"), "dev/alice/locked"));
        assert!(acl.can_read(&Identity::user("alice", "c"), "dev/alice/open"));
    }

    #[test]
    fn wildcards_in_names_switch_patterns_off() {
        let acl = Acl::parse("user e+v\ntopic ev/#\npattern readwrite dev/%u/#\npattern read cid/%c\n").unwrap();
        assert!(!acl.can_read(&Identity::user("alice", "a+b"), "dev/alice/1"));
        assert!(!acl.can_read(&Identity::user("alice", "a#b"), "dev/alice/1"));
        assert!(!acl.can_read(&Identity::user("e+v", "evc"), "cid/evc"));
        assert!(acl.can_read(&Identity::user("e+v", "evc"), "ev/1"), "own rules still apply");
        assert!(acl.can_read(&Identity::user("alice", "a/b"), "dev/alice/1"), "'/' is allowed");
        assert!(acl.can_read(&Identity::user("bo/b", "x"), "dev/bo/b/1"));
    }

    #[test]
    fn users_without_a_section_get_nothing_of_their_own() {
        let acl = acl();
        let dave = Identity::user("dave", "d");
        assert!(!acl.can_read(&dave, "public/x"), "the anonymous section is not theirs");
        assert!(acl.can_read(&dave, "dev/dave/x"), "but patterns are");
        let none = Acl::parse("").unwrap();
        assert!(!none.can_read(&dave, "x"));
        assert!(!none.can_publish(&Identity::anonymous("x"), "x"));
    }

    #[test]
    fn subscribe() {
        let acl = acl();
        let alice = Identity::user("alice", "c1");
        let cases = [
            ("a/b/#", true),
            ("a/#", true),
            ("#", true),
            ("+/+/x", true),
            ("a/b/secret", false),
            ("a/x", false),
            ("w", false),
            ("x/#", false),
            ("dev/alice/#", true),
            ("dev/alice/locked", false),
            ("cid/+", true),
            ("a/#/b", false),
        ];
        for (filter, want) in cases {
            assert_eq!(acl.can_subscribe(&alice, filter), want, "{filter}");
        }
        let carol = Identity::user("carol", "c");
        assert!(!acl.can_subscribe(&carol, "c/secret/#"));
        assert!(!acl.can_subscribe(&carol, "$SYS/#"));
        assert!(acl.can_subscribe(&carol, "c/#"), "partly denied is still a subscription");
    }

    #[test]
    fn compiled_rules_agree_with_one_off_checks() {
        let acl = acl();
        let who = Identity::user("alice", "c1");
        let rules = acl.rules_for(&who);
        for topic in ["a/b/c", "a/b/secret", "dev/alice/1", "cid/c1", "out/c1/alice", "zz"] {
            assert_eq!(rules.can_read(topic), acl.can_read(&who, topic), "{topic}");
            assert_eq!(rules.can_publish(topic), acl.can_publish(&who, topic), "{topic}");
        }
    }

    #[test]
    fn substitution_is_one_pass() {
        let acl = Acl::parse("pattern read x/%u/%c\n").unwrap();
        assert!(acl.can_read(&Identity::user("%c", "id"), "x/%c/id"));
    }

    #[test]
    fn parse_details() {
        let acl = Acl::parse("  topic read   with space/x\r\ntopic plain\nuser u\nuser u\ntopic deny a\n").unwrap();
        let anon = Identity::anonymous("c");
        assert!(acl.can_read(&anon, "with space/x"));
        assert!(acl.can_publish(&anon, "plain") && acl.can_read(&anon, "plain"), "no access word is readwrite");
        assert!(!acl.can_read(&Identity::user("u", "c"), "a"));
        assert_eq!(acl.users().collect::<Vec<_>>(), ["u"]);
    }

    #[test]
    fn reports_every_bad_line() {
        let text =
            "topic read ok\nfoo bar\ntopic bogus x/y\nuser\ntopic\ntopic read a/#/b\npattern write a+/b\n# fine\n";
        let err = Acl::parse(text).unwrap_err();
        let lines: Vec<usize> = err.line_errors().iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6, 7], "{err}");
        assert!(err.to_string().starts_with("acl file <text> has 6 bad line(s): line 2: unknown keyword"), "{err}");
    }
}
