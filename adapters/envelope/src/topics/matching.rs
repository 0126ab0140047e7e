//! MQTT 3.1.1 / 5 topic filter matching (3.1.1 §4.7, 5.0 §4.7).
//!
//! Shared subscriptions are the caller's business: strip `$share/{group}/`
//! before matching, as the filter that matters is the part after it.

/// Whether `topic` (a topic name) matches `filter` (a subscription filter).
///
/// - `+` matches exactly one level, including an empty one (`a/+/c` matches `a//c`);
/// - `#` matches the parent level and any number of levels below it
///   (`a/#` matches `a`, `a/` and `a/b/c`);
/// - a topic starting with `$` is not matched by a filter starting with a
///   wildcard (`#` and `+/x` do not match `$SYS/x`);
/// - an invalid filter or topic (empty, a wildcard inside a level, `#` not last,
///   a wildcard in the topic) matches nothing.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    // One pass over the bytes of both, level by level; this sits on the routing
    // path, so it avoids splitting into level slices.
    let (filter, topic) = (filter.as_bytes(), topic.as_bytes());
    if filter.is_empty() || topic.is_empty() {
        return false;
    }
    if topic[0] == b'$' && matches!(filter[0], b'+' | b'#') {
        return false;
    }
    // `f` and `t` point at the start of the current level of each. A topic
    // ending in `/` has one more, empty level, hence `topic_has_level`.
    let (mut f, mut t) = (0, 0);
    let mut topic_has_level = true;
    loop {
        if filter.get(f) == Some(&b'#') {
            // `#` must be the whole last level; it takes the rest of the topic,
            // even none of it (`a/#` matches `a`).
            return f + 1 == filter.len() && (!topic_has_level || is_valid_topic_bytes(&topic[t..]));
        }
        if !topic_has_level {
            return false;
        }
        if filter.get(f) == Some(&b'+') && matches!(filter.get(f + 1), None | Some(b'/')) {
            while t < topic.len() && topic[t] != b'/' {
                if is_wildcard_or_nul(topic[t]) {
                    return false;
                }
                t += 1;
            }
            f += 1;
        } else {
            let length = filter[f..].iter().position(|&byte| byte == b'/').unwrap_or(filter.len() - f);
            let end = t + length;
            if end > topic.len() || (end < topic.len() && topic[end] != b'/') {
                return false;
            }
            // Equal bytes that are not wildcards keep both sides valid.
            let same =
                filter[f..f + length].iter().zip(&topic[t..end]).all(|(&a, &b)| a == b && !is_wildcard_or_nul(a));
            if !same {
                return false;
            }
            f += length;
            t = end;
        }
        // Both levels ended here.
        if f == filter.len() {
            return t == topic.len();
        }
        f += 1;
        if t == topic.len() {
            topic_has_level = false;
        } else {
            t += 1;
        }
    }
}

fn is_wildcard_or_nul(byte: u8) -> bool {
    matches!(byte, b'+' | b'#' | 0)
}

fn is_valid_topic_bytes(bytes: &[u8]) -> bool {
    !bytes.iter().copied().any(is_wildcard_or_nul)
}

/// A topic name as MQTT allows it in a PUBLISH: non-empty, no wildcards, no NUL.
pub fn is_valid_topic(topic: &str) -> bool {
    !topic.is_empty() && is_valid_topic_bytes(topic.as_bytes())
}

/// A subscription filter as MQTT allows it: non-empty, no NUL, `+` and `#`
/// only as whole levels, `#` only as the last level.
pub fn is_valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.contains('\0') {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        match level {
            "+" => {}
            "#" if levels.peek().is_none() => {}
            _ if level.contains(['+', '#']) => return false,
            _ => {}
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_examples() {
        let cases: &[(&str, &str, bool)] = &[
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            ("sport/tennis/player1/#", "sport/tennis/player1/ranking", true),
            ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true),
            ("sport/#", "sport", true),
            ("#", "sport/tennis", true),
            ("sport/tennis/+", "sport/tennis/player1", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false),
            ("sport/+", "sport", false),
            ("sport/+", "sport/", true),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            ("a/+/c", "a//c", true),
            ("+", "", false),
            ("a/#", "a/", true),
            ("a/b", "a/b/", false),
            ("a/b/", "a/b", false),
        ];
        for (filter, topic, expected) in cases {
            assert_eq!(topic_matches(filter, topic), *expected, "{filter} vs {topic}");
        }
    }

    #[test]
    fn dollar_topics_need_an_explicit_first_level() {
        assert!(!topic_matches("#", "$SYS/broker/uptime"));
        assert!(!topic_matches("+/broker/uptime", "$SYS/broker/uptime"));
        assert!(!topic_matches("+", "$SYS"));
        assert!(topic_matches("$SYS/#", "$SYS/broker/uptime"));
        assert!(topic_matches("$SYS/+/uptime", "$SYS/broker/uptime"));
        assert!(topic_matches("a/#", "a/$b"), "the rule only concerns the first level");
    }

    #[test]
    fn invalid_filters_and_topics_match_nothing() {
        for filter in ["", "a/#/b", "a/b#", "a+/b", "a/+b", "#/a"] {
            assert!(!is_valid_filter(filter), "{filter}");
            assert!(!topic_matches(filter, "a/b"), "{filter}");
        }
        for topic in ["", "a/+", "a/#", "a\0b"] {
            assert!(!is_valid_topic(topic), "{topic:?}");
            assert!(!topic_matches("#", topic), "{topic:?}");
        }
        for filter in ["#", "+", "a/+/#", "+/+", "/", "$SYS/#", "a//b"] {
            assert!(is_valid_filter(filter), "{filter}");
        }
    }

    /// The specification, written as plainly as possible.
    fn reference(filter: &str, topic: &str) -> bool {
        fn walk(filter: &[&str], topic: &[&str]) -> bool {
            match (filter.split_first(), topic.split_first()) {
                (None, None) => true,
                (Some((&"#", rest)), _) => rest.is_empty(),
                (Some((&"+", f)), Some((_, t))) => walk(f, t),
                (Some((want, f)), Some((have, t))) => want == have && walk(f, t),
                _ => false,
            }
        }
        if !is_valid_filter(filter) || !is_valid_topic(topic) {
            return false;
        }
        let filter: Vec<&str> = filter.split('/').collect();
        let topic: Vec<&str> = topic.split('/').collect();
        if topic[0].starts_with('$') && (filter[0] == "+" || filter[0] == "#") {
            return false;
        }
        walk(&filter, &topic)
    }

    fn levels(choices: &'static [&'static str]) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(choices), 1..5).prop_map(|levels| levels.join("/"))
    }

    proptest! {
        #[test]
        fn agrees_with_the_reference(
            filter in levels(&["a", "b", "ab", "", "+", "#", "$SYS", "a+", "#b", "+a", "a\0"]),
            topic in levels(&["a", "b", "ab", "", "$SYS", "c+", "$x", "#", "+", "a\0"]),
        ) {
            prop_assert_eq!(topic_matches(&filter, &topic), reference(&filter, &topic));
        }

        #[test]
        fn agrees_with_the_reference_on_any_text(filter in "[ab/+#$]{0,8}", topic in "[ab/+#$]{0,8}") {
            prop_assert_eq!(topic_matches(&filter, &topic), reference(&filter, &topic));
        }

        #[test]
        fn a_topic_used_as_filter_matches_itself(topic in "[a-z/$]{1,12}") {
            prop_assert!(topic_matches(&topic, &topic));
        }
    }
}
