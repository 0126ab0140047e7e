use std::borrow::Cow;
use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::topics::topic_matches;

fn aliases(pairs: &[(&str, &str)]) -> Result<TopicAliases, AliasError> {
    TopicAliases::new(pairs.iter().map(|(a, c)| (a.to_string(), c.to_string())).collect())
}

#[test]
fn defaults_map_the_design_legacy_spellings() {
    let map = TopicAliases::defaults();
    assert_eq!(map.resolve("alicia/voice/stt/result"), "alicia/voice/stt/response");
    assert_eq!(map.resolve("alicia/ai/request"), "alicia/voice/ai/request");
    assert_eq!(map.resolve("alicia/health/heartbeat/stt_service"), "alicia/system/discovery/heartbeat");
    assert_eq!(map.resolve("alicia/health/heartbeat"), "alicia/system/discovery/heartbeat");
    assert_eq!(map.resolve("alicia/health/status/tts_service"), "alicia/system/health/tts_service");
}

#[test]
fn misses_are_borrowed_unchanged() {
    let map = TopicAliases::defaults();
    for topic in [
        "alicia/voice/stt/request",
        "alicia/voice/stt/response",
        "alicia/health/heartbeat/a/b",
        "alicia/ai/request/more",
        "alicia",
        "",
        "$SYS/broker/load",
    ] {
        assert!(matches!(map.resolve(topic), Cow::Borrowed(t) if t == topic), "{topic}");
    }
    assert!(matches!(TopicAliases::default().resolve("alicia/ai/request"), Cow::Borrowed(_)));
}

#[test]
fn plus_levels_fill_canonical_plus_levels_in_order() {
    let map = aliases(&[("old/+/x/+", "new/+/y/+"), ("two/+/+", "one/+")]).unwrap();
    assert_eq!(map.resolve("old/a/x/b"), "new/a/y/b");
    assert_eq!(map.resolve("old//x/"), "new//y/", "+ matches empty levels");
    assert_eq!(map.resolve("two/first/second"), "one/first", "extra captures are dropped");
}

#[test]
fn hash_carries_the_remaining_levels() {
    let map = aliases(&[("alicia/ai/#", "alicia/voice/ai/#"), ("legacy/#", "alicia/monitoring/logs")]).unwrap();
    assert_eq!(map.resolve("alicia/ai/request"), "alicia/voice/ai/request");
    assert_eq!(map.resolve("alicia/ai/a/b/c"), "alicia/voice/ai/a/b/c");
    assert_eq!(map.resolve("alicia/ai"), "alicia/voice/ai", "zero levels: the `#` and its `/` go");
    assert_eq!(map.resolve("alicia/ai/"), "alicia/voice/ai/", "one empty level is kept");
    assert_eq!(map.resolve("legacy/anything/at/all"), "alicia/monitoring/logs");
}

#[test]
fn the_most_specific_alias_wins() {
    let map = aliases(&[
        ("a/#", "hash"),
        ("a/+/c", "plus"),
        ("a/b/c", "literal"),
        ("a/b/#", "literal-hash"),
        ("+/b/c/d", "leading-plus"),
    ])
    .unwrap();
    assert_eq!(map.resolve("a/b/c"), "literal");
    assert_eq!(map.resolve("a/x/c"), "plus");
    assert_eq!(map.resolve("a/b/z"), "literal-hash");
    assert_eq!(map.resolve("a/x/z"), "hash");
    assert_eq!(map.resolve("a"), "hash");
    assert_eq!(map.resolve("a/b/c/d"), "literal-hash", "leftmost literal level decides first");
    assert_eq!(map.resolve("q/b/c/d"), "leading-plus");
}

#[test]
fn dollar_topics_are_not_matched_by_leading_wildcards() {
    // Canonical topics start with `$` here only so that `#` does not chain onto them.
    let map = aliases(&[("#", "$all"), ("+/x", "$plus"), ("$SYS/old", "$SYS/new")]).unwrap();
    assert_eq!(map.resolve("$SYS/x"), "$SYS/x");
    assert_eq!(map.resolve("$SYS/old"), "$SYS/new");
    assert_eq!(map.resolve("anything/else"), "$all");
    assert_eq!(map.resolve("a/x"), "$plus");
}

#[test]
fn refuses_aliases_that_cannot_resolve() {
    let cases: &[(&str, &str)] = &[
        ("", "a"),
        ("a/#/b", "a"),
        ("a+", "a"),
        ("a", ""),
        ("a", "b/+"),
        ("a/+", "b/+/+"),
        ("a/+", "b/#"),
        ("a/#", "#"),
        ("a/#", "+/x"),
        ("+/+/+/+/+/+/+/+/+", "x"),
    ];
    for (alias, canonical) in cases {
        let error = aliases(&[(alias, canonical)]).unwrap_err();
        assert_eq!(error.error_type(), "invalid_alias");
        assert_eq!((error.alias.as_str(), error.canonical.as_str()), (*alias, *canonical), "{error}");
    }
    let chained = aliases(&[("a", "b"), ("b", "c")]).unwrap_err();
    assert_eq!(chained.reason, "the canonical topic is itself an alias");
}

#[test]
fn builds_from_a_hash_map() {
    let map: HashMap<String, String> = [("x/y".to_owned(), "alicia/x".to_owned())].into();
    let aliases = TopicAliases::try_from(map).unwrap();
    assert_eq!(aliases.len(), 1);
    assert!(!aliases.is_empty());
    assert_eq!(aliases.resolve("x/y"), "alicia/x");
}

fn topic() -> impl Strategy<Value = String> {
    let level =
        prop::sample::select(&["alicia", "health", "heartbeat", "status", "ai", "request", "x", "", "$SYS"][..]);
    prop::collection::vec(level, 1..6).prop_map(|levels| levels.join("/"))
}

proptest! {
    /// An alias applies exactly when its filter matches the topic.
    #[test]
    fn resolves_exactly_the_topics_some_alias_filter_matches(topic in topic()) {
        let pairs = [
            ("alicia/health/heartbeat/+", "alicia/system/discovery/heartbeat"),
            ("alicia/+/status/#", "alicia/system/health/+/#"),
            ("alicia/ai/request", "alicia/voice/ai/request"),
            ("x/#", "alicia/monitoring/logs"),
        ];
        let map = aliases(&pairs).unwrap();
        let matched = pairs.iter().any(|(alias, _)| topic_matches(alias, &topic));
        prop_assert_eq!(matches!(map.resolve(&topic), Cow::Owned(_)), matched);
    }
}
