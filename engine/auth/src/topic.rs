//! MQTT topic filters: matching a topic, and comparing two filters for a SUBSCRIBE.
//!
//! A topic starting with `$` (`$SYS/…`) is never matched by a filter whose first level
//! is a wildcard (MQTT 3.1.1 §4.7.2, and what mosquitto does to ACL filters too).
//! Nothing here allocates: these run per message.

/// Whether `filter` matches the concrete `topic`. `#` also matches the parent level
/// (`a/#` matches `a`); `+` matches one level, even an empty one.
pub(crate) fn matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && starts_wild(filter) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether some topic matches both filters.
pub(crate) fn overlaps(a: &str, b: &str) -> bool {
    if (starts_wild(a) && b.starts_with('$')) || (starts_wild(b) && a.starts_with('$')) {
        return false;
    }
    let mut x = a.split('/');
    let mut y = b.split('/');
    loop {
        match (x.next(), y.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (Some(p), Some(q)) if p == "+" || q == "+" || p == q => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether every topic `inner` matches is also matched by `outer`.
pub(crate) fn covers(outer: &str, inner: &str) -> bool {
    if starts_wild(outer) && inner.starts_with('$') {
        return false;
    }
    let mut o = outer.split('/');
    let mut i = inner.split('/');
    loop {
        match (o.next(), i.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(level)) if level != "#" => {}
            (Some(p), Some(q)) if p == q && q != "+" && q != "#" => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Why `filter` is not a valid MQTT topic filter, if it is not.
pub(crate) fn filter_problem(filter: &str) -> Option<&'static str> {
    if filter.is_empty() {
        return Some("empty topic filter");
    }
    let levels: Vec<&str> = filter.split('/').collect();
    for (index, level) in levels.iter().enumerate() {
        if level.contains('#') && (*level != "#" || index + 1 != levels.len()) {
            return Some("'#' must be a whole level and the last one");
        }
        if level.contains('+') && *level != "+" {
            return Some("'+' must be a whole level");
        }
    }
    None
}

fn starts_wild(filter: &str) -> bool {
    filter.starts_with('+') || filter.starts_with('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        let cases = [
            ("a/b", "a/b", true),
            ("a/b", "a/c", false),
            ("a/+", "a/b", true),
            ("a/+", "a/", true),
            ("a/+", "a", false),
            ("a/+", "a/b/c", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("#", "a/b", true),
            ("#", "$SYS/x", false),
            ("+/x", "$SYS/x", false),
            ("$SYS/#", "$SYS/x", true),
            ("+/+", "/x", true),
            ("a/b", "a/b/", false),
        ];
        for (filter, topic, want) in cases {
            assert_eq!(matches(filter, topic), want, "{filter} vs {topic}");
        }
    }

    #[test]
    fn overlapping() {
        let cases = [
            ("a/#", "a/b/+", true),
            ("a/+", "+/b", true),
            ("a/+", "b/+", false),
            ("a", "a/#", true),
            ("a/b", "a/b/c", false),
            ("#", "$SYS/#", false),
            ("$SYS/+", "$SYS/#", true),
            ("+/+", "a", false),
        ];
        for (a, b, want) in cases {
            assert_eq!(overlaps(a, b), want, "{a} vs {b}");
            assert_eq!(overlaps(b, a), want, "{b} vs {a}");
        }
    }

    #[test]
    fn covering() {
        let cases = [
            ("a/#", "a/b/+", true),
            ("a/#", "a", true),
            ("a/+", "a/b", true),
            ("a/+", "a/+", true),
            ("a/+", "a/#", false),
            ("a/b", "a/+", false),
            ("#", "#", true),
            ("#", "$SYS/x", false),
            ("+/x", "+/x", true),
            ("a", "a/#", false),
        ];
        for (outer, inner, want) in cases {
            assert_eq!(covers(outer, inner), want, "{outer} covers {inner}");
        }
    }

    #[test]
    fn filter_validity() {
        for good in ["a", "#", "+", "a/+/b", "a/#", "/", "$SYS/#", "dev/%u/#"] {
            assert_eq!(filter_problem(good), None, "{good}");
        }
        for bad in ["", "a#", "a/#/b", "a+/b", "a/b+"] {
            assert!(filter_problem(bad).is_some(), "{bad}");
        }
    }
}
