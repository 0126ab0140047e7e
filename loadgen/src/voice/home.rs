//! The home's sites and speakers, and a larger home when K exceeds its sites.
//!
//! The engine runs one voice session per site, and a reply is attributed to a satellite by
//! the speaker it plays on, so every satellite needs a site and a speaker of its own. The
//! sample home has four; for more, loadgen hands the engine (`alicia serve --home`) the same
//! home with extra sites added to its existing rooms.
//!
//! Only the few keys loadgen needs are read here, line by line (the engine validates the
//! file properly when it loads it); this keeps loadgen free of the engine's home types.

use std::collections::HashSet;
use std::fmt::Write as _;

use anyhow::{bail, Result};
use serde::Serialize;

use super::speech;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Site {
    pub id: String,
    pub speaker: String,
}

/// `(table header, key, value)` for every `key = value` line, the header as written
/// (`[sites.kitchen]`, `[[devices]]`), the value without its quotes. Comments are cut at
/// the first `#`, which the homes loadgen reads never put inside a string.
fn entries(text: &str) -> Vec<(&str, &str, &str)> {
    let mut out = Vec::new();
    let mut header = "";
    for line in text.lines().map(|l| l.split('#').next().unwrap_or_default().trim()) {
        if line.starts_with('[') {
            header = line;
        } else if let Some((key, value)) = line.split_once('=') {
            out.push((header, key.trim(), value.trim().trim_matches('"')));
        }
    }
    out
}

/// `[sites.X]` tables with their `speaker`, in file order (the order K takes them).
pub fn parse_sites(text: &str) -> Vec<Site> {
    entries(text)
        .into_iter()
        .filter(|(_, key, _)| *key == "speaker")
        .filter_map(|(header, _, value)| {
            let id = header.strip_prefix("[sites.")?.strip_suffix(']')?;
            Some(Site { id: id.to_string(), speaker: value.to_string() })
        })
        .collect()
}

/// `(id, name)` of every `[rooms.X]`, in file order; a room without a name is called by its id.
fn parse_rooms(text: &str) -> Vec<(String, String)> {
    let mut rooms: Vec<(String, String)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(id) = line.strip_prefix("[rooms.").and_then(|r| r.strip_suffix(']')) {
            rooms.push((id.to_string(), id.replace('_', " ")));
        }
    }
    for (header, key, value) in entries(text) {
        let id = header.strip_prefix("[rooms.").and_then(|r| r.strip_suffix(']'));
        if let (Some(id), "name") = (id, key) {
            if let Some(room) = rooms.iter_mut().find(|(r, _)| r == id) {
                room.1 = value.to_string();
            }
        }
    }
    rooms
}

/// `base` with enough sites for `k` satellites: for each one beyond the home's sites, a new
/// speaker (`kitchen_2_speaker`, "kitchen speaker two") and a site using it
/// (`[sites.kitchen_2]`) in the home's rooms in turn. The new names say "speaker", which
/// none of the spoken requests does, so they cannot capture a request meant for a light,
/// a lamp or the site's timer. Returns `base` unchanged when it already has `k` sites.
pub fn with_sites(base: &str, k: usize) -> Result<String> {
    let existing = parse_sites(base);
    if k <= existing.len() {
        return Ok(base.to_string());
    }
    let rooms = parse_rooms(base);
    if rooms.is_empty() {
        bail!("the home has no [rooms.*] to add {} sites to", k - existing.len());
    }
    let all = entries(base);
    // Device ids and site ids are separate namespaces in the engine; keeping the new ones
    // clear of both also keeps the generated file easy to read.
    let mut taken: HashSet<String> =
        all.iter().filter(|(h, key, _)| *h == "[[devices]]" && *key == "id").map(|e| e.2.to_string()).collect();
    taken.extend(existing.iter().map(|s| s.id.clone()));
    let names: HashSet<String> =
        all.iter().filter(|(h, key, _)| *h == "[[devices]]" && *key == "name").map(|e| e.2.to_lowercase()).collect();

    let mut text = base.trim_end().to_string();
    text +=
        "\n\n# Added by alicia-loadgen voice: one site with a speaker of its own per satellite beyond the home's.\n";
    let mut next = vec![2u64; rooms.len()];
    for i in 0..k - existing.len() {
        let r = i % rooms.len();
        let (room, room_name) = &rooms[r];
        let (site, speaker, name) = loop {
            let n = next[r];
            next[r] += 1;
            let site = format!("{room}_{n}");
            let speaker = format!("{site}_speaker");
            let name = format!("{room_name} speaker {}", speech::number_word(n).unwrap_or_else(|| n.to_string()));
            if !taken.contains(&site) && !taken.contains(&speaker) && !names.contains(&name) {
                break (site, speaker, name);
            }
        };
        let _ = write!(
            text,
            "\n[[devices]]\nid = \"{speaker}\"\nname = \"{name}\"\nkind = \"speaker\"\nroom = \"{room}\"\n\n\
             [sites.{site}]\nroom = \"{room}\"\nspeaker = \"{speaker}\"\n"
        );
        taken.insert(site);
        taken.insert(speaker);
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use alicia_stage_intent::{Home, IntentMatcher};
    use chrono::NaiveDate;

    use super::*;

    const SAMPLE: &str = include_str!("../../../bus-config/home.toml");

    #[test]
    fn reads_sites_and_speakers_from_the_home() {
        let home = "[rooms.kitchen]\nname = \"kitchen\"\n[sites.kitchen]\nroom = \"kitchen\"\nspeaker = \"kitchen_speaker\" # x\n\
                    [sites.hallway]\nspeaker = \"hallway_speaker\"\n";
        let sites = parse_sites(home);
        assert_eq!(sites.len(), 2);
        assert_eq!((sites[1].id.as_str(), sites[1].speaker.as_str()), ("hallway", "hallway_speaker"));
        assert_eq!(parse_sites(SAMPLE).len(), 4);
    }

    #[test]
    fn a_home_with_enough_sites_is_left_alone() {
        assert_eq!(with_sites(SAMPLE, 4).unwrap(), SAMPLE);
        assert_eq!(with_sites(SAMPLE, 1).unwrap(), SAMPLE);
    }

    #[test]
    fn ten_satellites_over_four_sites_get_ten_sites_and_speakers_the_engine_accepts() {
        let text = with_sites(SAMPLE, 10).unwrap();
        let sites = parse_sites(&text);
        assert_eq!(sites.len(), 10);
        assert_eq!(sites[..4], parse_sites(SAMPLE)[..]);
        assert_eq!(sites.iter().map(|s| &s.id).collect::<HashSet<_>>().len(), 10);
        assert_eq!(sites.iter().map(|s| &s.speaker).collect::<HashSet<_>>().len(), 10);
        let added: Vec<&str> = sites[4..].iter().map(|s| s.id.as_str()).collect();
        assert_eq!(added, ["kitchen_2", "living_room_2", "bedroom_2", "hallway_2", "kitchen_3", "living_room_3"]);

        // The engine's own validation: valid TOML, known rooms, speakers that exist and
        // are speakers, no id or name given twice.
        let home = Home::from_toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(home.sites.len(), 10);
        for site in &sites {
            let speaker = home.device(&site.speaker).unwrap();
            assert_eq!(home.sites[&site.id].room, speaker.room);
        }
        assert_eq!(home.device("living_room_3_speaker").unwrap().name, "living room speaker three");
    }

    #[test]
    fn the_added_speakers_do_not_change_what_any_request_means() {
        let home = Home::from_toml(&with_sites(SAMPLE, 10).unwrap()).unwrap();
        let matcher = IntentMatcher::new(&home);
        let noon = NaiveDate::from_ymd_opt(2026, 12, 3).unwrap().and_hms_opt(12, 0, 0).unwrap();
        for site in parse_sites(&with_sites(SAMPLE, 10).unwrap()) {
            for phrase in speech::phrases(&site.speaker) {
                let heard = matcher.understand(&phrase.text, &site.id, noon).commands.first().map(|c| c.to_json());
                let expected = phrase.expected.map(|e| (e.device, e.action.to_string(), e.value));
                let got = heard.map(|c| {
                    (
                        c["device_id"].as_str().unwrap().to_string(),
                        c["action"].as_str().unwrap().to_string(),
                        c["value"].as_i64(),
                    )
                });
                assert_eq!(got, expected, "{:?} at {}", phrase.text, site.id);
            }
        }
    }

    #[test]
    fn new_ids_and_names_skip_ones_the_home_already_uses() {
        let base =
            "[rooms.den]\n[[devices]]\nid = \"den_2_speaker\"\nname = \"x\"\nkind = \"speaker\"\nroom = \"den\"\n\
                    [sites.den]\nroom = \"den\"\nspeaker = \"den_2_speaker\"\n";
        let sites = parse_sites(&with_sites(base, 3).unwrap());
        let ids: Vec<&str> = sites.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["den", "den_3", "den_4"]);
        assert!(with_sites("[sites.a]\nspeaker = \"s\"\n", 2).is_err());
    }
}
