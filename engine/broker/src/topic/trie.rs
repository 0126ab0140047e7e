//! Subscriptions by filter, as a tree of topic levels: a PUBLISH is matched by walking
//! its levels once, whatever the number of subscriptions.
//!
//! Each node holds the subscribers whose filter ends there (`exact`) and those whose
//! filter ends there with `/#` (`multi`, which also match the parent level itself). A
//! subscriber is a key `K` (who) with a value `V` (its options); one key holds at most
//! one entry per filter, and subscribing again replaces the options.

use std::collections::HashMap;

#[derive(Debug)]
struct Node<K, V> {
    children: HashMap<Box<str>, Node<K, V>>,
    plus: Option<Box<Node<K, V>>>,
    exact: Vec<(K, V)>,
    multi: Vec<(K, V)>,
}

impl<K, V> Default for Node<K, V> {
    fn default() -> Self {
        Node { children: HashMap::new(), plus: None, exact: Vec::new(), multi: Vec::new() }
    }
}

impl<K, V> Node<K, V> {
    fn is_empty(&self) -> bool {
        self.children.is_empty() && self.plus.is_none() && self.exact.is_empty() && self.multi.is_empty()
    }
}

#[derive(Debug)]
pub(crate) struct SubscriptionTrie<K, V> {
    root: Node<K, V>,
    entries: usize,
}

impl<K, V> Default for SubscriptionTrie<K, V> {
    fn default() -> Self {
        SubscriptionTrie { root: Node::default(), entries: 0 }
    }
}

/// Where in a node a filter's last level puts its subscribers.
enum Slot {
    Exact,
    Multi,
}

impl<K: Copy + Eq, V> SubscriptionTrie<K, V> {
    /// Adds (or replaces) `key`'s subscription to `filter` (a checked, non-shared filter).
    /// Returns the options it replaced.
    pub(crate) fn insert(&mut self, filter: &str, key: K, value: V) -> Option<V> {
        let (node, slot) = Self::walk_to(&mut self.root, filter);
        let list = match slot {
            Slot::Exact => &mut node.exact,
            Slot::Multi => &mut node.multi,
        };
        match list.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => Some(std::mem::replace(&mut entry.1, value)),
            None => {
                list.push((key, value));
                self.entries += 1;
                None
            }
        }
    }

    fn walk_to<'n>(root: &'n mut Node<K, V>, filter: &str) -> (&'n mut Node<K, V>, Slot) {
        let mut node = root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if level == "#" && levels.peek().is_none() {
                return (node, Slot::Multi);
            }
            node = if level == "+" {
                node.plus.get_or_insert_with(Default::default)
            } else {
                node.children.entry(level.into()).or_default()
            };
        }
        (node, Slot::Exact)
    }

    /// Removes `key`'s subscription to `filter`; returns its options if there was one.
    pub(crate) fn remove(&mut self, filter: &str, key: K) -> Option<V> {
        let levels: Vec<&str> = filter.split('/').collect();
        let removed = Self::remove_at(&mut self.root, &levels, key);
        if removed.is_some() {
            self.entries -= 1;
        }
        removed
    }

    fn remove_at(node: &mut Node<K, V>, levels: &[&str], key: K) -> Option<V> {
        let take = |list: &mut Vec<(K, V)>| list.iter().position(|(k, _)| *k == key).map(|i| list.swap_remove(i).1);
        match levels {
            [] => take(&mut node.exact),
            ["#"] => take(&mut node.multi),
            [level, rest @ ..] => {
                let removed;
                if *level == "+" {
                    let child = node.plus.as_deref_mut()?;
                    removed = Self::remove_at(child, rest, key);
                    if child.is_empty() {
                        node.plus = None;
                    }
                } else {
                    let child = node.children.get_mut(*level)?;
                    removed = Self::remove_at(child, rest, key);
                    if child.is_empty() {
                        node.children.remove(*level);
                    }
                }
                if node.children.capacity() > 4 * node.children.len().max(1) {
                    node.children.shrink_to_fit();
                }
                removed
            }
        }
    }

    /// Calls `f` for every subscription whose filter matches the topic name `topic`.
    /// A key appears once per matching filter.
    pub(crate) fn for_each_match(&self, topic: &str, mut f: impl FnMut(K, &V)) {
        let dollar = topic.starts_with('$');
        Self::visit(&self.root, Some(topic), true, dollar, &mut f);
    }

    fn visit(node: &Node<K, V>, rest: Option<&str>, root: bool, dollar: bool, f: &mut impl FnMut(K, &V)) {
        // A `$` topic is not matched by a wildcard in the first level.
        let wildcards = !(root && dollar);
        if wildcards {
            for (k, v) in &node.multi {
                f(*k, v);
            }
        }
        let Some(rest) = rest else {
            for (k, v) in &node.exact {
                f(*k, v);
            }
            return;
        };
        let (level, next) = match rest.split_once('/') {
            Some((level, next)) => (level, Some(next)),
            None => (rest, None),
        };
        if let Some(child) = node.children.get(level) {
            Self::visit(child, next, false, dollar, f);
        }
        if wildcards {
            if let Some(plus) = &node.plus {
                Self::visit(plus, next, false, dollar, f);
            }
        }
    }

    /// Every (filter, key, value), for diagnostics and tests.
    #[cfg(test)]
    fn all(&self) -> Vec<(String, K, &V)> {
        fn walk<'t, K: Copy, V>(node: &'t Node<K, V>, prefix: &str, out: &mut Vec<(String, K, &'t V)>) {
            let join = |level: &str| if prefix.is_empty() { level.to_string() } else { format!("{prefix}/{level}") };
            for (k, v) in &node.multi {
                out.push((join("#"), *k, v));
            }
            for (level, child) in &node.children {
                let path = join(level);
                for (k, v) in &child.exact {
                    out.push((path.clone(), *k, v));
                }
                walk(child, &path, out);
            }
            if let Some(plus) = &node.plus {
                let path = join("+");
                for (k, v) in &plus.exact {
                    out.push((path.clone(), *k, v));
                }
                walk(plus, &path, out);
            }
        }
        let mut out = Vec::new();
        walk(&self.root, "", &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::matches;
    use proptest::prelude::*;

    fn matched(trie: &SubscriptionTrie<u32, ()>, topic: &str) -> Vec<u32> {
        let mut keys = Vec::new();
        trie.for_each_match(topic, |k, _| keys.push(k));
        keys.sort_unstable();
        keys
    }

    #[test]
    fn matches_like_the_spec() {
        let mut trie = SubscriptionTrie::default();
        for (i, f) in ["a/b", "a/+", "#", "a/#", "+/b", "$SYS/#", "a/b/c", "+"].iter().enumerate() {
            trie.insert(f, i as u32, ());
        }
        assert_eq!(matched(&trie, "a/b"), [0, 1, 2, 3, 4]);
        assert_eq!(matched(&trie, "a"), [2, 3, 7]);
        assert_eq!(matched(&trie, "$SYS/load"), [5]);
        assert_eq!(matched(&trie, "a/b/c"), [2, 3, 6]);
    }

    #[test]
    fn replace_and_remove_prune_the_tree() {
        let mut trie = SubscriptionTrie::default();
        assert_eq!(trie.insert("a/+/c", 1u32, 1u8), None);
        assert_eq!(trie.insert("a/+/c", 1, 2), Some(1));
        assert_eq!(trie.entries, 1);
        assert_eq!(trie.remove("a/+/c", 2), None);
        assert_eq!(trie.remove("a/+/c", 1), Some(2));
        assert_eq!(trie.entries, 0);
        assert!(trie.root.is_empty(), "empty branches are pruned");
    }

    fn level() -> impl Strategy<Value = String> {
        prop_oneof![Just("a".to_string()), Just("b".to_string()), Just(String::new()), Just("é".to_string())]
    }

    fn topic() -> impl Strategy<Value = String> {
        (proptest::collection::vec(level(), 1..4), any::<bool>()).prop_map(|(levels, dollar)| {
            if dollar {
                format!("$S/{}", levels.join("/"))
            } else {
                levels.join("/")
            }
        })
    }

    fn filter() -> impl Strategy<Value = String> {
        let level = prop_oneof![level(), Just("+".to_string())];
        (proptest::collection::vec(level, 1..4), any::<bool>()).prop_map(|(mut levels, hash)| {
            if hash {
                levels.push("#".into());
            }
            levels.join("/")
        })
    }

    proptest! {
        #[test]
        fn trie_agrees_with_the_plain_matcher(filters in proptest::collection::vec(filter(), 0..12), topic in topic()) {
            let mut trie = SubscriptionTrie::default();
            for (i, f) in filters.iter().enumerate() {
                trie.insert(f, i as u32, ());
            }
            let expected: Vec<u32> =
                filters.iter().enumerate().filter(|(_, f)| matches(&topic, f)).map(|(i, _)| i as u32).collect();
            prop_assert_eq!(matched(&trie, &topic), expected);
            prop_assert_eq!(trie.all().len(), filters.len());
            for (i, f) in filters.iter().enumerate() {
                trie.remove(f, i as u32);
            }
            prop_assert!(trie.root.is_empty());
        }
    }
}
