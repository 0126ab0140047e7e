//! The router topics an entry is appended under: the appending node's index, padded to
//! a size class.
//!
//! rumqttd rotates its log's segments by the bytes it counts per entry, `4 + topic +
//! payload`, but an entry also costs its `Publish` and properties (a few hundred bytes)
//! and the real topic it carries in them. Left uncounted, a flood of tiny messages with
//! long topics would make the log hold millions of entries before it rotates. So the
//! router topic is padded to at least what the entry really costs, rounded up to one of
//! a few classes: each node has a handful of topics, the router's topic state stays
//! that small, and its window of `segment_size × segment_count` bytes is a bound on
//! memory again.

use bytes::Bytes;

/// What an entry costs beyond what it carries (its `Publish`, its properties, the
/// segment's slot, rumqttd's bookkeeping), measured as the size of those structs.
pub(crate) const ENTRY_OVERHEAD: usize = 384;
/// The classes a router topic is padded to. An entry that would need more travels
/// beside the log (`large`).
const CLASSES: [usize; 4] = [512, 2048, 8192, 32768];

/// Every node's padded topics. Built once at start and kept for the process's life, so
/// each clone is free.
#[derive(Debug)]
pub(crate) struct Tags {
    per_node: Vec<[Bytes; CLASSES.len()]>,
}

impl Tags {
    pub(crate) fn new(nodes: usize) -> Tags {
        let per_node = (0..nodes)
            .map(|node| {
                CLASSES.map(|class| {
                    let mut tag = node.to_string();
                    // `_` keeps it one topic level, matched by the nodes' filter `+`.
                    tag.extend(std::iter::repeat_n('_', class - tag.len()));
                    Bytes::from_static(Box::leak(tag.into_boxed_str()).as_bytes())
                })
            })
            .collect();
        Tags { per_node }
    }

    /// The topic for an entry of `cost` bytes (what it carries plus the overhead), or
    /// `None` when it is too large for the log.
    pub(crate) fn for_cost(&self, node: u16, cost: usize) -> Option<&Bytes> {
        let class = CLASSES.iter().position(|&c| c >= cost)?;
        Some(&self.per_node[node as usize][class])
    }

    /// The smallest topic, for entries whose cost the padding need not cover (a handle
    /// to a large message, a control entry).
    pub(crate) fn small(&self, node: u16) -> &Bytes {
        &self.per_node[node as usize][0]
    }
}

/// The node a router topic names.
pub(crate) fn origin(topic: &[u8]) -> Option<u16> {
    let digits = topic.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&topic[..digits]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_padded_to_the_cost_and_name_their_node() {
        let tags = Tags::new(12);
        let t = tags.for_cost(11, 700).unwrap();
        assert_eq!(t.len(), 2048);
        assert_eq!(origin(t), Some(11));
        assert!(!t.contains(&b'/'));
        assert!(tags.for_cost(0, 32768).is_some());
        assert!(tags.for_cost(0, 32769).is_none());
        assert_eq!(origin(tags.small(3)), Some(3));
    }
}
