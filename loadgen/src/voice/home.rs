//! The home's sites and speakers, and a larger home when K exceeds its sites.
//!
//! The engine runs one voice session per site, and a reply is attributed to a satellite by
//! the speaker it plays on, so every satellite needs a site and a speaker of its own. The
//! sample home has four; for more, loadgen hands the engine (`alicia serve --home`) the same
//! home with extra sites added to its existing rooms.
//!
//! The home is read and validated by the engine's own model (`alicia-home`), so loadgen
//! never runs a home the engine would refuse.

use std::collections::HashSet;
use std::fmt::Write as _;

use alicia_home::{spoken_key, Home};
use anyhow::{anyhow, bail, Result};
use serde::Serialize;

use super::speech;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Site {
    pub id: String,
    pub speaker: String,
}

/// The home's model keeps its tables by id; loadgen takes them in the order the file
/// writes them, so K = 1 is the first site written and generated sites come after the
/// home's own.
fn in_file_order<'a>(text: &str, table: &str, ids: impl Iterator<Item = &'a String>) -> Vec<&'a String> {
    let mut ids: Vec<&String> = ids.collect();
    ids.sort_by_key(|id| text.find(&format!("[{table}.{id}]")).unwrap_or(usize::MAX));
    ids
}

fn parse_home(text: &str) -> Result<Home> {
    Home::from_toml(text).map_err(|err| anyhow!("{err}"))
}

/// The sites with a `speaker`, in file order (the order K takes them).
pub fn parse_sites(text: &str) -> Result<Vec<Site>> {
    let home = parse_home(text)?;
    Ok(in_file_order(text, "sites", home.sites.keys())
        .into_iter()
        .filter_map(|id| {
            let speaker = home.sites[id].speaker.clone()?;
            Some(Site { id: id.clone(), speaker })
        })
        .collect())
}

/// `base` with enough sites for `k` satellites: for each one beyond the home's sites, a new
/// speaker (`kitchen_2_speaker`, "kitchen speaker two") and a site using it
/// (`[sites.kitchen_2]`) in the home's rooms in turn. The new names say "speaker", which
/// none of the spoken requests does, so they cannot capture a request meant for a light,
/// a lamp or the site's timer. Returns `base` unchanged when it already has `k` sites.
pub fn with_sites(base: &str, k: usize) -> Result<String> {
    let existing = parse_sites(base)?;
    if k <= existing.len() {
        return Ok(base.to_string());
    }
    let home = parse_home(base)?;
    let rooms: Vec<(&String, &str)> = in_file_order(base, "rooms", home.rooms.keys())
        .into_iter()
        .map(|id| (id, home.rooms[id].name.as_str()))
        .collect();
    if rooms.is_empty() {
        bail!("the home has no [rooms.*] to add {} sites to", k - existing.len());
    }
    // Device ids and site ids are separate namespaces in the engine; keeping the new ones
    // clear of both also keeps the generated file easy to read.
    let mut taken: HashSet<String> = home.devices.iter().map(|d| d.id.clone()).collect();
    taken.extend(home.sites.keys().cloned());
    let names: HashSet<String> = home.devices.iter().map(|d| spoken_key(&d.name)).collect();

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
            if !taken.contains(&site) && !taken.contains(&speaker) && !names.contains(&spoken_key(&name)) {
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

    use alicia_stage_intent::IntentMatcher;
    use chrono::NaiveDate;

    use super::*;

    const SAMPLE: &str = include_str!("../../../bus-config/home.toml");

    #[test]
    fn reads_sites_and_speakers_from_the_home_in_file_order() {
        let home = "[rooms.kitchen]\nname = \"kitchen\"\n\
                    [[devices]]\nid = \"kitchen_speaker\"\nname = \"kitchen speaker\"\nkind = \"speaker\"\nroom = \"kitchen\"\n\
                    [[devices]]\nid = \"hall_speaker\"\nname = \"hall speaker\"\nkind = \"speaker\"\nroom = \"kitchen\"\n\
                    [sites.kitchen]\nroom = \"kitchen\"\nspeaker = \"kitchen_speaker\" # x\n\
                    [sites.hallway]\nroom = \"kitchen\"\nspeaker = \"hall_speaker\"\n\
                    [sites.attic]\nroom = \"kitchen\"\n";
        let sites = parse_sites(home).unwrap();
        assert_eq!(sites.len(), 2);
        assert_eq!((sites[0].id.as_str(), sites[0].speaker.as_str()), ("kitchen", "kitchen_speaker"));
        assert_eq!((sites[1].id.as_str(), sites[1].speaker.as_str()), ("hallway", "hall_speaker"));
        let sample: Vec<String> = parse_sites(SAMPLE).unwrap().into_iter().map(|s| s.id).collect();
        assert_eq!(sample, ["kitchen", "living_room", "bedroom", "hallway"]);
        assert!(parse_sites("[sites.a]\nspeaker = \"s\"\n").is_err(), "the engine would refuse this home");
    }

    #[test]
    fn a_home_with_enough_sites_is_left_alone() {
        assert_eq!(with_sites(SAMPLE, 4).unwrap(), SAMPLE);
        assert_eq!(with_sites(SAMPLE, 1).unwrap(), SAMPLE);
    }

    #[test]
    fn ten_satellites_over_four_sites_get_ten_sites_and_speakers_the_engine_accepts() {
        let text = with_sites(SAMPLE, 10).unwrap();
        let sites = parse_sites(&text).unwrap();
        assert_eq!(sites.len(), 10);
        assert_eq!(sites[..4], parse_sites(SAMPLE).unwrap()[..]);
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
        for site in parse_sites(&with_sites(SAMPLE, 10).unwrap()).unwrap() {
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
            "[rooms.den]\nname = \"den\"\n[[devices]]\nid = \"den_2_speaker\"\nname = \"x\"\nkind = \"speaker\"\nroom = \"den\"\n\
                    [sites.den]\nroom = \"den\"\nspeaker = \"den_2_speaker\"\n";
        let sites = parse_sites(&with_sites(base, 3).unwrap()).unwrap();
        let ids: Vec<&str> = sites.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["den", "den_3", "den_4"]);
        assert!(with_sites("[sites.a]\nspeaker = \"s\"\n", 2).is_err());
    }
}
