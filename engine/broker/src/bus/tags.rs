//! The router topics an entry is appended under: the appending node's index, padded to
//! a size class.
//!
//! rumqttd rotates its log's segments by the bytes it counts per entry, `4 + topic +
//! payload`. The payload is the real one, but the real topic and the other properties
//! travel in the entry's properties, uncounted, and so does the entry's own overhead
//! (its `Publish` and properties, a few hundred bytes). Left so, a flood of messages with
//! long topics and tiny payloads would make the log hold millions of entries before it
//! rotated. So the router topic is padded to cover the real topic and properties,
//! rounded up to one of a few classes: each node has a handful of topics, the router's
//! topic state stays that small, and its window of `segment_size × segment_count` bytes
//! bounds memory again (the smallest class keeps entries to one per 68 counted bytes,
//! and each costs at most about 400 more than it is counted).
//! Short classes matter: rumqttd hashes and copies the topic of every entry it
//! appends.

use bytes::Bytes;

/// The classes a router topic is padded to. An entry whose topic and properties need
/// more travels beside the log (`large`).
const CLASSES: [usize; 6] = [64, 128, 256, 1024, 4096, 16384];

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

    /// The topic for an entry whose topic and properties take `header` bytes, or `None`
    /// when they are too large for the log.
    pub(crate) fn for_header(&self, node: u16, header: usize) -> Option<&Bytes> {
        let class = CLASSES.iter().position(|&c| c >= header)?;
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
        let t = tags.for_header(11, 700).unwrap();
        assert_eq!(t.len(), 1024);
        assert_eq!(origin(t), Some(11));
        assert!(!t.contains(&b'/'));
        assert_eq!(tags.for_header(0, 0).unwrap().len(), 64);
        assert_eq!(tags.for_header(0, 65).unwrap().len(), 128);
        assert!(tags.for_header(0, 16384).is_some());
        assert!(tags.for_header(0, 16385).is_none());
        assert_eq!(origin(tags.small(3)), Some(3));
    }
}
