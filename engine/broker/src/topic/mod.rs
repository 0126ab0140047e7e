//! Topic names and topic filters: the MQTT rules (3.1.1 §4.7, 5 §4.7), the engine's
//! length limit, and what a filter matches.
//!
//! A name is any valid UTF-8 without NUL and without wildcards; a filter may hold `+` as
//! a whole level and `#` as the whole last level, and `$share/{group}/{filter}` names a
//! shared subscription. Topics starting with `$` are not matched by a filter whose first
//! level is a wildcard (`#` does not see `$SYS/...`).

mod trie;

pub(crate) use trie::SubscriptionTrie;

/// Why a topic name or filter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("empty topic")]
    Empty,
    #[error("topic longer than {max} bytes")]
    TooLong { max: usize },
    #[error("topic is not valid UTF-8")]
    NotUtf8,
    #[error("topic contains U+0000")]
    Nul,
    #[error("wildcard in a topic name")]
    Wildcard,
    #[error("misplaced wildcard in a topic filter")]
    BadWildcard,
    #[error("malformed shared subscription ($share/{{group}}/{{filter}})")]
    BadShare,
}

/// Checks a PUBLISH topic name (already known to be non-empty, or resolved from an alias).
pub fn check_name(bytes: &[u8], max_len: usize) -> Result<&str, TopicError> {
    if bytes.is_empty() {
        return Err(TopicError::Empty);
    }
    if bytes.len() > max_len {
        return Err(TopicError::TooLong { max: max_len });
    }
    let name = std::str::from_utf8(bytes).map_err(|_| TopicError::NotUtf8)?;
    if bytes.contains(&0) {
        return Err(TopicError::Nul);
    }
    if bytes.iter().any(|&b| b == b'+' || b == b'#') {
        return Err(TopicError::Wildcard);
    }
    Ok(name)
}

/// A checked topic filter, split into its shared-subscription group (if any) and the
/// filter proper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedFilter<'a> {
    pub group: Option<&'a str>,
    pub filter: &'a str,
}

impl ParsedFilter<'_> {
    pub fn is_shared(&self) -> bool {
        self.group.is_some()
    }
}

/// Checks a SUBSCRIBE/UNSUBSCRIBE topic filter.
pub fn parse_filter(path: &str, max_len: usize) -> Result<ParsedFilter<'_>, TopicError> {
    if path.is_empty() {
        return Err(TopicError::Empty);
    }
    if path.len() > max_len {
        return Err(TopicError::TooLong { max: max_len });
    }
    if path.contains('\0') {
        return Err(TopicError::Nul);
    }
    let (group, filter) = match path.strip_prefix("$share/") {
        Some(rest) => {
            let (group, filter) = rest.split_once('/').ok_or(TopicError::BadShare)?;
            if group.is_empty() || group.contains(['+', '#']) || filter.is_empty() {
                return Err(TopicError::BadShare);
            }
            (Some(group), filter)
        }
        None => (None, path),
    };
    check_wildcards(filter)?;
    Ok(ParsedFilter { group, filter })
}

fn check_wildcards(filter: &str) -> Result<(), TopicError> {
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        match level {
            "+" => {}
            "#" if last => {}
            _ if level.contains(['+', '#']) => return Err(TopicError::BadWildcard),
            _ => {}
        }
    }
    Ok(())
}

/// Whether `filter` (checked, not shared) matches the topic name `topic`.
pub fn matches(topic: &str, filter: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut topic_levels = topic.split('/');
    for f in filter.split('/') {
        if f == "#" {
            return true;
        }
        match topic_levels.next() {
            Some(t) if f == "+" || f == t => {}
            _ => return false,
        }
    }
    topic_levels.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(check_name("温度/室内".as_bytes(), 100), Ok("温度/室内"));
        assert_eq!(check_name("é/x".as_bytes(), 100), Ok("é/x"));
        assert_eq!(check_name(b"/", 100), Ok("/"));
        assert_eq!(check_name(b"", 100), Err(TopicError::Empty));
        assert_eq!(check_name(b"a/+", 100), Err(TopicError::Wildcard));
        assert_eq!(check_name(b"a/#", 100), Err(TopicError::Wildcard));
        assert_eq!(check_name(b"a\0b", 100), Err(TopicError::Nul));
        assert_eq!(check_name(&[0xff, 0x2f], 100), Err(TopicError::NotUtf8));
        assert_eq!(check_name(b"abcd", 3), Err(TopicError::TooLong { max: 3 }));
    }

    #[test]
    fn filters() {
        for ok in ["a", "a/+/b", "#", "a/#", "+", "+/+", "/", "$SYS/#", "温度/#", "a//b"] {
            assert!(parse_filter(ok, 100).is_ok(), "{ok}");
        }
        for bad in ["", "a/#/b", "a+", "a#", "#/a", "a/b+", "x\0y"] {
            assert!(parse_filter(bad, 100).is_err(), "{bad}");
        }
        let shared = parse_filter("$share/g/a/#", 100).unwrap();
        assert_eq!(shared, ParsedFilter { group: Some("g"), filter: "a/#" });
        for bad in ["$share/g", "$share//a", "$share/g+/a", "$share/g/", "$share/g/a#"] {
            assert!(parse_filter(bad, 100).is_err(), "{bad}");
        }
        assert_eq!(parse_filter("abcd", 3), Err(TopicError::TooLong { max: 3 }));
    }

    #[test]
    fn matching() {
        let cases = [
            ("a/b", "a/b", true),
            ("a/b", "a/+", true),
            ("a/b", "+/+", true),
            ("a/b", "#", true),
            ("a/b", "a/#", true),
            ("a", "a/#", true),
            ("a/b/c", "a/+", false),
            ("a", "a/+", false),
            ("a/", "a/+", true),
            ("/a", "+/a", true),
            ("$SYS/x", "#", false),
            ("$SYS/x", "+/x", false),
            ("$SYS/x", "$SYS/#", true),
            ("温度/室内", "温度/#", true),
            ("é/x", "é/+", true),
        ];
        for (topic, filter, expected) in cases {
            assert_eq!(matches(topic, filter), expected, "{topic} vs {filter}");
        }
    }
}
