//! The sessions a node hosts, by client id and by slot.
//!
//! A slot is the key the node's trie stores for a subscriber; each occupant of a slot
//! gets a new generation, so a [`SessionKey`] names one session even after its slot is
//! reused.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::bus::SessionKey;
use crate::session::{Grant, Session};

#[derive(Default)]
struct Slot {
    session: Option<Rc<RefCell<Session>>>,
    generation: u32,
}

#[derive(Default)]
pub(crate) struct Sessions {
    by_id: HashMap<Rc<str>, u32>,
    slots: Vec<Slot>,
    free: Vec<u32>,
}

impl Sessions {
    pub(crate) fn find(&self, client_id: &str) -> Option<(u32, Rc<RefCell<Session>>)> {
        let slot = *self.by_id.get(client_id)?;
        self.get(slot).map(|s| (slot, s))
    }

    pub(crate) fn get(&self, slot: u32) -> Option<Rc<RefCell<Session>>> {
        self.slots.get(slot as usize)?.session.clone()
    }

    /// The session a key names, if it is still the slot's occupant.
    pub(crate) fn by_key(&self, key: SessionKey) -> Option<Rc<RefCell<Session>>> {
        let slot = self.slots.get(key.slot as usize)?;
        (slot.generation == key.generation).then(|| slot.session.clone()).flatten()
    }

    /// A free slot and the key its next occupant will have.
    pub(crate) fn reserve(&mut self, node: u16) -> SessionKey {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let entry = &mut self.slots[slot as usize];
        entry.generation = entry.generation.wrapping_add(1);
        SessionKey { node, slot, generation: entry.generation }
    }

    pub(crate) fn insert(&mut self, key: SessionKey, session: Rc<RefCell<Session>>) {
        let client_id = session.borrow().client_id.clone();
        self.slots[key.slot as usize].session = Some(session);
        self.by_id.insert(client_id, key.slot);
    }

    /// Removes the session in `key`'s slot, if it is still that one.
    pub(crate) fn remove(&mut self, key: SessionKey) -> Option<Rc<RefCell<Session>>> {
        let slot = self.slots.get_mut(key.slot as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let session = slot.session.take()?;
        let client_id = session.borrow().client_id.clone();
        if self.by_id.get(&client_id) == Some(&key.slot) {
            self.by_id.remove(&client_id);
        }
        self.free.push(key.slot);
        if self.by_id.capacity() > 64 && self.by_id.capacity() > 4 * self.by_id.len() {
            self.by_id.shrink_to_fit();
        }
        Some(session)
    }

    /// The delivery grant for a shared subscription's chosen member on this node. When
    /// the member's session has already gone (its leave is still on its way through the
    /// log), another local member of the same group takes the message: no other node
    /// will, since they all chose this one.
    pub(crate) fn shared_pick(&self, member: SessionKey, share: &str) -> Option<(u32, Grant)> {
        let grant_of =
            |session: &Rc<RefCell<Session>>| session.borrow().subscriptions.get(share).map(|s| Grant::from(*s));
        if let Some(session) = self.by_key(member) {
            if let Some(grant) = grant_of(&session) {
                return Some((member.slot, grant));
            }
        }
        self.slots.iter().enumerate().find_map(|(slot, s)| {
            let session = s.session.as_ref()?;
            let grant = session.try_borrow().ok()?.subscriptions.get(share).map(|s| Grant::from(*s))?;
            Some((slot as u32, grant))
        })
    }

    /// Every session on the node.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Rc<RefCell<Session>>> {
        self.slots.iter().filter_map(|s| s.session.as_ref())
    }
}
