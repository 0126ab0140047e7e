//! Legacy topic spellings mapped onto canonical ones.
//!
//! The seeds' book and code use older spellings (`alicia/voice/stt/result`,
//! `alicia/ai/request`, `alicia/health/heartbeat/{service}`); DESIGN.md keeps
//! them working as configured aliases. The rule:
//!
//! - an alias is a topic or an MQTT filter; a canonical topic may use `+` and
//!   `#` only to receive what the alias's wildcards matched;
//! - the n-th `+` of the canonical side takes the level matched by the n-th `+`
//!   of the alias; extra alias `+` levels are dropped
//!   (`alicia/health/heartbeat/+` → `alicia/system/discovery/heartbeat`), and a
//!   canonical side with more `+` than its alias is refused;
//! - a `#` on the canonical side (last level) takes every level the alias's `#`
//!   matched, and disappears with its `/` when that was none
//!   (`alicia/ai/#` → `alicia/voice/ai/#` maps `alicia/ai` to `alicia/voice/ai`);
//! - when several aliases match, the most specific wins, level by level from
//!   the left: a literal level beats `+`, which beats `#`;
//! - resolution is one step, so a canonical topic must not itself be an alias;
//! - the `$` rule of MQTT holds: a wildcard first level never matches `$SYS/...`.

use std::borrow::Cow;
use std::collections::HashMap;

use thiserror::Error;

use super::matching::is_valid_filter;

/// Most `+` levels an alias may have; captures live in a fixed array so that
/// resolving allocates nothing unless an alias matches.
const MAX_PLUS: usize = 8;

/// A configured alias that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("topic alias `{alias}` → `{canonical}`: {reason}")]
pub struct AliasError {
    pub alias: String,
    pub canonical: String,
    pub reason: &'static str,
}

impl AliasError {
    /// Short stable label, like every other error of the crate.
    pub fn error_type(&self) -> &'static str {
        "invalid_alias"
    }
}

/// Legacy → canonical topic map; see the module docs for the rule.
#[derive(Debug, Clone, Default)]
pub struct TopicAliases {
    root: Node,
    len: usize,
}

/// One level of the alias trie.
#[derive(Debug, Clone, Default)]
struct Node {
    /// Few children per level in practice, so a scan beats hashing.
    literal: Vec<(Box<str>, Node)>,
    plus: Option<Box<Node>>,
    /// An alias ending in `#` below this level.
    hash: Option<Target>,
    /// An alias ending exactly at this level.
    end: Option<Target>,
}

#[derive(Debug, Clone)]
struct Target {
    canonical: Vec<Part>,
}

#[derive(Debug, Clone)]
enum Part {
    Literal(Box<str>),
    Plus,
    Hash,
}

/// What an alias's wildcards matched in one topic.
struct Captures<'t> {
    plus: [&'t str; MAX_PLUS],
    len: usize,
}

impl TopicAliases {
    /// Builds the map, refusing aliases that could not resolve sensibly.
    pub fn new(aliases: HashMap<String, String>) -> Result<TopicAliases, AliasError> {
        // Sorted so that, of several bad aliases, the same one is always reported.
        let mut pairs: Vec<(&String, &String)> = aliases.iter().collect();
        pairs.sort_unstable();
        let mut map = TopicAliases::default();
        for (alias, canonical) in &pairs {
            map.insert(alias, canonical)?;
        }
        for (alias, canonical) in &pairs {
            let literal = !canonical.contains(['+', '#']);
            if literal && map.resolve(canonical) != canonical.as_str() {
                return Err(error(alias, canonical, "the canonical topic is itself an alias"));
            }
        }
        Ok(map)
    }

    /// The legacy spellings of the seeds' book (chapter 3) that DESIGN.md keeps.
    pub fn defaults() -> TopicAliases {
        let pairs = [
            ("alicia/voice/stt/result", "alicia/voice/stt/response"),
            ("alicia/voice/tts/result", "alicia/voice/tts/response"),
            ("alicia/ai/request", "alicia/voice/ai/request"),
            ("alicia/ai/response", "alicia/voice/ai/response"),
            ("alicia/health/heartbeat", "alicia/system/discovery/heartbeat"),
            ("alicia/health/heartbeat/+", "alicia/system/discovery/heartbeat"),
            ("alicia/health/status/+", "alicia/system/health/+"),
        ];
        let map = pairs.into_iter().map(|(alias, canonical)| (alias.to_owned(), canonical.to_owned())).collect();
        TopicAliases::new(map).expect("the default aliases are valid")
    }

    /// Number of aliases.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The canonical spelling of `topic`: borrowed and unchanged when no alias
    /// matches (the common case, which allocates nothing).
    pub fn resolve<'t>(&self, topic: &'t str) -> Cow<'t, str> {
        if self.len == 0 {
            return Cow::Borrowed(topic);
        }
        let mut captures = Captures { plus: [""; MAX_PLUS], len: 0 };
        let dollar = topic.starts_with('$');
        match find(&self.root, Some(topic), &mut captures, dollar) {
            None => Cow::Borrowed(topic),
            Some((target, remainder)) => Cow::Owned(render(target, &captures, remainder)),
        }
    }

    fn insert(&mut self, alias: &str, canonical: &str) -> Result<(), AliasError> {
        if !is_valid_filter(alias) {
            return Err(error(alias, canonical, "the alias is not a valid topic or filter"));
        }
        if !is_valid_filter(canonical) {
            return Err(error(alias, canonical, "the canonical side is not a valid topic"));
        }
        let count = |text: &str, wildcard: &str| text.split('/').filter(|level| *level == wildcard).count();
        let alias_plus = count(alias, "+");
        if alias_plus > MAX_PLUS {
            return Err(error(alias, canonical, "the alias has more than 8 `+` levels"));
        }
        if count(canonical, "+") > alias_plus {
            return Err(error(alias, canonical, "the canonical side has more `+` levels than the alias"));
        }
        if count(canonical, "#") > count(alias, "#") {
            return Err(error(alias, canonical, "the canonical side has `#` but the alias does not"));
        }
        if canonical.starts_with(['+', '#']) {
            return Err(error(alias, canonical, "the canonical side must start with a literal level"));
        }
        let target = Target {
            canonical: canonical
                .split('/')
                .map(|level| match level {
                    "+" => Part::Plus,
                    "#" => Part::Hash,
                    _ => Part::Literal(level.into()),
                })
                .collect(),
        };
        let mut node = &mut self.root;
        let mut levels = alias.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" {
                // `#` is always last in a valid filter.
                node.hash = Some(target);
                self.len += 1;
                return Ok(());
            }
            node = if level == "+" {
                node.plus.get_or_insert_with(Box::default)
            } else {
                let index = match node.literal.iter().position(|(name, _)| &**name == level) {
                    Some(index) => index,
                    None => {
                        node.literal.push((level.into(), Node::default()));
                        node.literal.len() - 1
                    }
                };
                &mut node.literal[index].1
            };
            if levels.peek().is_none() {
                node.end = Some(target);
                self.len += 1;
                return Ok(());
            }
        }
        unreachable!("a valid filter has at least one level")
    }
}

impl TryFrom<HashMap<String, String>> for TopicAliases {
    type Error = AliasError;

    fn try_from(aliases: HashMap<String, String>) -> Result<Self, Self::Error> {
        TopicAliases::new(aliases)
    }
}

fn error(alias: &str, canonical: &str, reason: &'static str) -> AliasError {
    AliasError { alias: alias.to_owned(), canonical: canonical.to_owned(), reason }
}

/// Depth-first search, literal before `+` before `#` at each level, so the first
/// hit is the most specific alias. `rest` is `None` once every level is used;
/// the returned remainder is what a `#` matched (`None` for zero levels).
fn find<'n, 't>(
    node: &'n Node,
    rest: Option<&'t str>,
    captures: &mut Captures<'t>,
    dollar_first_level: bool,
) -> Option<(&'n Target, Option<&'t str>)> {
    let Some(rest) = rest else {
        return node.end.as_ref().or(node.hash.as_ref()).map(|target| (target, None));
    };
    // Levels are short: a plain scan and compare beat memchr and memcmp calls,
    // and this runs for every message on an aliased bus.
    let (level, tail) = match rest.bytes().position(|byte| byte == b'/') {
        Some(slash) => (&rest[..slash], Some(&rest[slash + 1..])),
        None => (rest, None),
    };
    if let Some((_, child)) = node.literal.iter().find(|(name, _)| same_level(name, level)) {
        if let Some(hit) = find(child, tail, captures, false) {
            return Some(hit);
        }
    }
    if dollar_first_level {
        return None;
    }
    if let Some(child) = &node.plus {
        // A trie path has at most MAX_PLUS `+` nodes, checked on insert.
        captures.plus[captures.len] = level;
        captures.len += 1;
        if let Some(hit) = find(child, tail, captures, false) {
            return Some(hit);
        }
        captures.len -= 1;
    }
    node.hash.as_ref().map(|target| (target, Some(rest)))
}

fn same_level(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

fn render(target: &Target, captures: &Captures<'_>, remainder: Option<&str>) -> String {
    let mut topic = String::with_capacity(64);
    let mut next_plus = captures.plus[..captures.len].iter();
    for (index, part) in target.canonical.iter().enumerate() {
        let level: &str = match part {
            Part::Literal(text) => text,
            Part::Plus => next_plus.next().expect("checked on insert: no more `+` than the alias"),
            Part::Hash => match remainder {
                Some(levels) => levels,
                None => break,
            },
        };
        if index > 0 {
            topic.push('/');
        }
        topic.push_str(level);
    }
    topic
}

#[cfg(test)]
mod tests;
