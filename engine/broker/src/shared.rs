//! Shared subscriptions (`$share/{group}/{filter}`): each matching message goes to one
//! member of the group.
//!
//! Members live on different nodes, and every node reads the same log in the same
//! order, so each node keeps the same membership (joins and leaves are log entries,
//! see `bus::control`) and the same turn counter, and picks the same member for every
//! message: the member's node delivers, the others do nothing. No message reaches two
//! members and none falls between them.

use std::collections::HashMap;

use crate::bus::{Control, SessionKey};
use crate::topic::{parse_filter, SubscriptionTrie};

#[derive(Debug)]
struct Group {
    share: String,
    members: Vec<SessionKey>,
    turn: u64,
}

#[derive(Debug, Default)]
pub(crate) struct SharedGroups {
    by_share: HashMap<String, u32>,
    groups: Vec<Option<Group>>,
    free: Vec<u32>,
    trie: SubscriptionTrie<u32, ()>,
}

impl SharedGroups {
    pub(crate) fn apply(&mut self, control: &Control) {
        match control {
            Control::ShareJoin { share, member } => self.join(share, *member),
            Control::ShareLeave { share, member } => self.leave(share, *member),
        }
    }

    fn join(&mut self, share: &str, member: SessionKey) {
        let Ok(parsed) = parse_filter(share, usize::MAX) else { return };
        if !parsed.is_shared() {
            return;
        }
        let id = match self.by_share.get(share) {
            Some(&id) => id,
            None => {
                let group = Group { share: share.to_string(), members: Vec::new(), turn: 0 };
                let id = match self.free.pop() {
                    Some(id) => {
                        self.groups[id as usize] = Some(group);
                        id
                    }
                    None => {
                        self.groups.push(Some(group));
                        (self.groups.len() - 1) as u32
                    }
                };
                self.by_share.insert(share.to_string(), id);
                self.trie.insert(parsed.filter, id, ());
                id
            }
        };
        if let Some(group) = self.groups[id as usize].as_mut() {
            if !group.members.contains(&member) {
                group.members.push(member);
            }
        }
    }

    fn leave(&mut self, share: &str, member: SessionKey) {
        let Some(&id) = self.by_share.get(share) else { return };
        let Some(group) = self.groups[id as usize].as_mut() else { return };
        group.members.retain(|m| *m != member);
        if group.members.is_empty() {
            if let Ok(parsed) = parse_filter(share, usize::MAX) {
                self.trie.remove(parsed.filter, id);
            }
            self.groups[id as usize] = None;
            self.by_share.remove(share);
            self.free.push(id);
        }
    }

    /// For every group whose filter matches `topic`, the member whose turn it is, with
    /// the group's `$share/...` filter; every node gets the same answers.
    pub(crate) fn choose(&mut self, topic: &str, mut f: impl FnMut(&str, SessionKey)) {
        if self.by_share.is_empty() {
            return;
        }
        let mut matched = Vec::new();
        self.trie.for_each_match(topic, |id, _| matched.push(id));
        for id in matched {
            if let Some(group) = self.groups[id as usize].as_mut() {
                let member = group.members[(group.turn % group.members.len() as u64) as usize];
                group.turn += 1;
                f(&group.share, member);
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.by_share.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(slot: u32) -> SessionKey {
        SessionKey { node: 0, slot, generation: 0 }
    }

    fn chosen(groups: &mut SharedGroups, topic: &str) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        groups.choose(topic, |share, member| out.push((share.to_string(), member.slot)));
        out
    }

    #[test]
    fn members_take_turns_and_replicas_agree() {
        let controls = [
            Control::ShareJoin { share: "$share/g/a/+".into(), member: key(1) },
            Control::ShareJoin { share: "$share/g/a/+".into(), member: key(2) },
            Control::ShareJoin { share: "$share/h/#".into(), member: key(3) },
        ];
        let (mut one, mut two) = (SharedGroups::default(), SharedGroups::default());
        for c in &controls {
            one.apply(c);
            two.apply(c);
        }
        let picks: Vec<_> = (0..4).map(|_| chosen(&mut one, "a/b")).collect();
        let again: Vec<_> = (0..4).map(|_| chosen(&mut two, "a/b")).collect();
        assert_eq!(picks, again, "every node picks the same member");
        let g: Vec<u32> = picks.iter().map(|p| p.iter().find(|(s, _)| s == "$share/g/a/+").unwrap().1).collect();
        assert_eq!(g, [1, 2, 1, 2]);
        assert!(chosen(&mut one, "$SYS/x").is_empty());
    }

    #[test]
    fn the_last_leave_removes_the_group() {
        let mut groups = SharedGroups::default();
        groups.apply(&Control::ShareJoin { share: "$share/g/t".into(), member: key(1) });
        groups.apply(&Control::ShareLeave { share: "$share/g/t".into(), member: key(1) });
        assert_eq!(groups.len(), 0);
        assert!(chosen(&mut groups, "t").is_empty());
        groups.apply(&Control::ShareJoin { share: "$share/g/t".into(), member: key(2) });
        assert_eq!(chosen(&mut groups, "t"), [("$share/g/t".to_string(), 2)]);
    }
}
