//! Several lights at once, as Home Assistant reads them: "turn off the lights in the
//! living room" (every light of the room, the site's room when none is said) and "all
//! the lights off" or "lights off everywhere" (every light of the home).

use crate::matcher::{find, kind_word, Heard, IntentMatcher, KnownSite, FUNCTION_WORDS};
use crate::words::is_number_word;

/// The lights a group request switches, and the room it names (`None`: the whole home).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct LightGroup {
    pub(crate) devices: Vec<String>,
    pub(crate) room: Option<String>,
}

impl IntentMatcher {
    /// The group of lights the words ask for, or `None` when they name one device (by
    /// its name, or as the only light of a room), or words this home does not know
    /// (the single-device path says which).
    pub(crate) fn light_group(&self, heard: &Heard<'_>, site: Option<&KnownSite>) -> Option<LightGroup> {
        let everywhere = heard.has("everywhere") || (heard.has("all") && !heard.has("of"));
        let plural = heard.words.iter().any(|w| matches!(w.said.as_str(), "lights" | "lamps" | "bulbs"));
        let names_lights = heard.content_words().any(|w| kind_word(w).is_some_and(|k| k[0].is_light()));
        if !(everywhere || plural) || !names_lights {
            return None;
        }
        let seq: Vec<(usize, &str)> = heard.content.iter().map(|&i| (i, heard.folded[i])).collect();
        if self.devices.iter().any(|d| d.phrases.iter().any(|p| find(&seq, p).is_some())) {
            return None;
        }
        let room = self.room_said(&seq);
        let known = |n: usize, word: &str| {
            room.as_ref().is_some_and(|(_, r)| r.contains(&n))
                || kind_word(word).is_some()
                || FUNCTION_WORDS.contains(&word)
                || is_number_word(word)
                || word == "everywhere"
        };
        if !seq.iter().enumerate().all(|(n, &(_, word))| known(n, word)) {
            return None;
        }
        let lights_in = |room: Option<&str>| -> Vec<String> {
            let in_room = |d: &&crate::matcher::KnownDevice| room.is_none_or(|r| d.room == r);
            self.devices.iter().filter(|d| d.kind.is_light()).filter(in_room).map(|d| d.id.clone()).collect()
        };
        let room = match room {
            Some((room, _)) => room,
            None if everywhere => return Some(LightGroup { devices: lights_in(None), room: None }),
            None => {
                let site_room = &site?.room;
                self.rooms.iter().find(|r| &r.id == site_room)?
            }
        };
        let devices = lights_in(Some(&room.id));
        (devices.len() > 1).then(|| LightGroup { devices, room: Some(room.name.clone()) })
    }
}
