//! [`Home`]: the rooms, devices and sites of `bus-config/home.toml`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::spoken::spoken_key;

/// The whole home, as written in `home.toml`. Build one with [`Home::from_toml`] or
/// [`Home::load`], which validate it; a hand-built `Home` should pass
/// [`Home::validate`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Home {
    /// By room id (`living_room`).
    #[serde(default)]
    pub rooms: BTreeMap<String, Room>,
    #[serde(default)]
    pub devices: Vec<Device>,
    /// By site id: the `{SITE}` of `alicia/voice/audio/{SITE}/...`.
    #[serde(default)]
    pub sites: BTreeMap<String, Site>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Room {
    /// How Alicia says it, and the first way a user may ("living room").
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Goes into `alicia/devices/{id}/command`.
    pub id: String,
    /// How Alicia says it ("kitchen lights").
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub kind: DeviceKind,
    /// A room id.
    pub room: String,
}

/// What a device is, which decides what may be asked of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceKind {
    Light,
    Lamp,
    Speaker,
}

impl DeviceKind {
    /// The noun a reply uses ("There's no lamp in the hallway.").
    pub fn noun(self) -> &'static str {
        match self {
            Self::Light => "light",
            Self::Lamp => "lamp",
            Self::Speaker => "speaker",
        }
    }

    /// Lights and lamps: on, off, brightness.
    pub fn is_light(self) -> bool {
        matches!(self, Self::Light | Self::Lamp)
    }
}

/// A place with a satellite: its default room, and the speaker that answers there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// A room id.
    pub room: String,
    /// A device id of kind `speaker`.
    #[serde(default)]
    pub speaker: Option<String>,
}

/// One problem in a home file, located by its path (`devices[2].room`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HomeProblem {
    pub path: String,
    pub message: String,
}

impl fmt::Display for HomeProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Why a home could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("home file is not valid: {message}")]
    Syntax { message: String },
    #[error("home file has {} error(s):\n{}", problems.len(), list(problems))]
    Invalid { problems: Vec<HomeProblem> },
}

fn list(problems: &[HomeProblem]) -> String {
    problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
}

impl Home {
    /// The home's words for Whisper's initial prompt: each device's name, then each
    /// room's, as a short list ("Kitchen lights, living room lamp, ..."). Whisper takes
    /// the prompt as text said just before, so these names win over words that sound
    /// like them ("hallway" over "whole way"). Aliases are left out: a long prompt
    /// costs decoder time on every request and makes small models loop.
    pub fn vocabulary_prompt(&self) -> String {
        let mut names: Vec<&str> = Vec::new();
        let devices = self.devices.iter().map(|d| d.name.trim());
        for name in devices.chain(self.rooms.values().map(|r| r.name.trim())) {
            if !name.is_empty() && !names.iter().any(|n| n.eq_ignore_ascii_case(name) || n.contains(name)) {
                names.push(name);
            }
        }
        let mut prompt = names.join(", ");
        if let Some(first) = prompt.get_mut(..1) {
            first.make_ascii_uppercase();
        }
        if !prompt.is_empty() {
            prompt.push('.');
        }
        prompt
    }

    pub fn load(path: impl AsRef<Path>) -> Result<Self, HomeError> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|source| HomeError::Read { path: path.to_path_buf(), source })?;
        Self::from_toml(&text)
    }

    pub fn from_toml(text: &str) -> Result<Self, HomeError> {
        let home: Home = toml::from_str(text).map_err(|err| HomeError::Syntax { message: err.to_string() })?;
        home.validate()?;
        Ok(home)
    }

    /// Every problem at once: unknown rooms and speakers, duplicate ids, ids that
    /// cannot be topic levels, and one name given to two devices.
    pub fn validate(&self) -> Result<(), HomeError> {
        let mut problems = Vec::new();
        let mut problem = |path: String, message: String| problems.push(HomeProblem { path, message });
        let known_rooms = || self.rooms.keys().map(String::as_str).collect::<Vec<_>>().join(", ");

        for (id, room) in &self.rooms {
            if room.name.trim().is_empty() {
                problem(format!("rooms.{id}.name"), "must not be empty".into());
            }
        }
        let mut ids: HashMap<&str, usize> = HashMap::new();
        let mut names: HashMap<String, &str> = HashMap::new();
        for (index, device) in self.devices.iter().enumerate() {
            let at = format!("devices[{index}]");
            if let Err(why) = check_id(&device.id) {
                problem(format!("{at}.id"), why);
            } else if let Some(first) = ids.insert(&device.id, index) {
                problem(format!("{at}.id"), format!("\"{}\" is already devices[{first}]", device.id));
            }
            if device.name.trim().is_empty() {
                problem(format!("{at}.name"), "must not be empty".into());
            }
            if !self.rooms.contains_key(&device.room) {
                problem(format!("{at}.room"), format!("unknown room \"{}\" (rooms: {})", device.room, known_rooms()));
            }
            let spoken = std::iter::once((format!("{at}.name"), &device.name))
                .chain(device.aliases.iter().enumerate().map(|(i, alias)| (format!("{at}.aliases[{i}]"), alias)));
            for (path, phrase) in spoken {
                let key = spoken_key(phrase);
                if key.is_empty() {
                    if !phrase.trim().is_empty() || path.contains("aliases") {
                        problem(path, "has no words".into());
                    }
                    continue;
                }
                match names.get(&key) {
                    Some(other) if *other != device.id => {
                        problem(path, format!("\"{phrase}\" also names {other}"));
                    }
                    _ => {
                        names.insert(key, &device.id);
                    }
                }
            }
        }
        for (id, site) in &self.sites {
            if !self.rooms.contains_key(&site.room) {
                problem(
                    format!("sites.{id}.room"),
                    format!("unknown room \"{}\" (rooms: {})", site.room, known_rooms()),
                );
            }
            if let Some(speaker) = &site.speaker {
                match self.devices.iter().find(|d| &d.id == speaker) {
                    None => problem(format!("sites.{id}.speaker"), format!("unknown device \"{speaker}\"")),
                    Some(device) if device.kind != DeviceKind::Speaker => problem(
                        format!("sites.{id}.speaker"),
                        format!("\"{speaker}\" is a {}, not a speaker", device.kind.noun()),
                    ),
                    Some(_) => {}
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(HomeError::Invalid { problems })
        }
    }

    pub fn device(&self, id: &str) -> Option<&Device> {
        self.devices.iter().find(|device| device.id == id)
    }

    /// The site ids, comma-separated in order, for a message naming the choices.
    pub fn site_list(&self) -> String {
        self.sites.keys().map(String::as_str).collect::<Vec<_>>().join(", ")
    }
}

/// A device id is one MQTT topic level: no wildcards, no separators, no spaces.
fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    if !is_id(id) {
        return Err(format!("\"{id}\" may hold only lowercase letters, digits, `_` and `-`"));
    }
    Ok(())
}

/// Whether `id` is written as the home's ids are (a device, room or site): one MQTT
/// topic level of lowercase letters, digits, `_` and `-`, not empty. Clients that name
/// a site or a device (the timers' commands) are held to the same rule.
pub fn is_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../../../bus-config/home.toml");

    fn problems(text: &str) -> Vec<String> {
        match Home::from_toml(text) {
            Err(HomeError::Invalid { problems }) => problems.iter().map(ToString::to_string).collect(),
            other => panic!("expected validation errors, got {other:?}"),
        }
    }

    #[test]
    fn the_sample_home_is_valid() {
        let home = Home::from_toml(SAMPLE).unwrap();
        assert_eq!(home.rooms.keys().collect::<Vec<_>>(), ["bedroom", "hallway", "kitchen", "living_room"]);
        assert_eq!(home.devices.len(), 8);
        assert_eq!(home.device("kitchen_lights").unwrap().kind, DeviceKind::Light);
        for (id, site) in &home.sites {
            assert_eq!(&site.room, id);
            assert_eq!(home.device(site.speaker.as_deref().unwrap()).unwrap().room, site.room);
        }
    }

    #[test]
    fn every_problem_is_named_with_its_path() {
        let text = r#"
            [rooms.kitchen]
            name = "kitchen"

            [[devices]]
            id = "garage_door"
            name = "garage door"
            kind = "light"
            room = "garage"

            [[devices]]
            id = "Kitchen/Lights"
            name = "kitchen lights"
            kind = "light"
            room = "kitchen"

            [[devices]]
            id = "kitchen_light_2"
            name = "kitchen light"
            kind = "light"
            room = "kitchen"

            [sites.kitchen]
            room = "kitchen"
            speaker = "garage_door"

            [sites.attic]
            room = "attic"
            speaker = "attic_speaker"
        "#;
        assert_eq!(
            problems(text),
            [
                "devices[0].room: unknown room \"garage\" (rooms: kitchen)",
                "devices[1].id: \"Kitchen/Lights\" may hold only lowercase letters, digits, `_` and `-`",
                "devices[2].name: \"kitchen light\" also names Kitchen/Lights",
                "sites.attic.room: unknown room \"attic\" (rooms: kitchen)",
                "sites.attic.speaker: unknown device \"attic_speaker\"",
                "sites.kitchen.speaker: \"garage_door\" is a light, not a speaker",
            ]
        );
    }

    #[test]
    fn duplicate_ids_and_unknown_keys_are_refused() {
        let twice = r#"
            [rooms.hall]
            name = "hall"
            [[devices]]
            id = "lamp"
            name = "lamp"
            kind = "lamp"
            room = "hall"
            [[devices]]
            id = "lamp"
            name = "other lamp"
            kind = "lamp"
            room = "hall"
        "#;
        assert_eq!(problems(twice), ["devices[1].id: \"lamp\" is already devices[0]"]);

        let err = Home::from_toml("[rooms.hall]\nname = \"hall\"\ncolour = \"red\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
        let err =
            Home::from_toml("[[devices]]\nid = \"x\"\nname = \"x\"\nkind = \"fridge\"\nroom = \"r\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown variant `fridge`"), "{err}");
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let err = Home::load("/nonexistent/home.toml").unwrap_err();
        assert!(err.to_string().starts_with("cannot read /nonexistent/home.toml"), "{err}");
    }
}
