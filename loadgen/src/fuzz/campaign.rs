//! The cases of a run: which family case `i` belongs to, `connections` workers running
//! cases side by side until a batch's deadline, what each family did, and the most
//! recent cases kept for the report when a check fails.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::time::Instant;

use super::case::{Case, Family, Target};
use super::driver::{self, Outcome};
use super::gen::Gen;
use super::{envelopes, mqtt_cases, voice_audio, voice_requests, wyoming};

/// Bytes of each step kept in the hex of a recent case; the rest is regenerated from
/// the seed and the case's index (`--show-case`).
const HEX_BYTES_PER_STEP: usize = 512;
/// Recent cases kept: more than one batch at the rates a 2-core machine reaches.
const RECENT: usize = 4_096;
const CONNECT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

fn weight(family: Family) -> u32 {
    match family {
        Family::RawConnect => 8,
        Family::RawAfterConnect => 8,
        Family::Packets => 40,
        Family::Mutated => 14,
        Family::Envelopes => 15,
        Family::VoiceAudio => 8,
        Family::VoiceRequests => 4,
        Family::Wyoming => 10,
    }
}

/// Case `index` of `seed` among `families`: the same three always give the same bytes.
pub(crate) fn generate(seed: u64, index: u64, families: &[Family]) -> Case {
    let mut gen = Gen::for_case(seed, index);
    let weights: Vec<u32> = families.iter().map(|&f| weight(f)).collect();
    let family = families[gen.weighted(&weights)];
    let target = if family == Family::Wyoming { Target::Wyoming } else { Target::Mqtt };
    let mut case = Case::new(index, family, target);
    match family {
        Family::RawConnect => mqtt_cases::raw_connect(&mut gen, &mut case),
        Family::RawAfterConnect => mqtt_cases::raw_after_connect(&mut gen, &mut case),
        Family::Packets => mqtt_cases::packets(&mut gen, &mut case),
        Family::Mutated => mqtt_cases::mutated(&mut gen, &mut case),
        Family::Envelopes => envelopes::envelopes(&mut gen, &mut case),
        Family::VoiceAudio => voice_audio::voice_audio(&mut gen, &mut case),
        Family::VoiceRequests => voice_requests::voice_requests(&mut gen, &mut case),
        Family::Wyoming => wyoming::wyoming(&mut gen, &mut case),
    }
    case
}

/// What one family's cases did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FamilyStats {
    pub cases: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Connections the engine ended before the case did (it refused the input).
    pub closed_by_engine: u64,
    pub connect_failures: u64,
    pub write_stalls: u64,
    /// Seconds of worker time the family's cases took.
    pub busy_s: f64,
}

impl FamilyStats {
    fn add(&mut self, case: &Case, outcome: &Outcome, took: std::time::Duration) {
        self.cases += 1;
        self.busy_s += took.as_secs_f64();
        self.bytes_sent += case.bytes_len() as u64;
        self.bytes_received += outcome.received as u64;
        self.closed_by_engine += u64::from(outcome.closed_by_engine || outcome.write_failed);
        self.connect_failures += u64::from(!outcome.connected);
        self.write_stalls += u64::from(outcome.write_stalled);
    }
}

/// A case as the report shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Recorded {
    pub index: u64,
    pub line: String,
    pub hex: String,
    /// `None` while it was still running.
    pub finished: Option<bool>,
}

pub(crate) struct Campaign {
    pub seed: u64,
    pub families: Vec<Family>,
    pub mqtt: SocketAddr,
    pub wyoming: Option<SocketAddr>,
    /// The index one past the last case to run.
    pub end: u64,
    next: AtomicU64,
    stats: Mutex<BTreeMap<Family, FamilyStats>>,
    recent: Mutex<VecDeque<Recorded>>,
    /// Room for connections held open in the background.
    held: Arc<tokio::sync::Semaphore>,
}

impl Campaign {
    pub(crate) fn new(
        seed: u64,
        families: Vec<Family>,
        first: u64,
        end: u64,
        mqtt: SocketAddr,
        wyoming: Option<SocketAddr>,
    ) -> Campaign {
        Campaign {
            seed,
            families,
            mqtt,
            wyoming,
            end,
            next: AtomicU64::new(first),
            stats: Mutex::new(BTreeMap::new()),
            recent: Mutex::new(VecDeque::new()),
            held: Arc::new(tokio::sync::Semaphore::new(driver::MAX_HELD)),
        }
    }

    /// The index of the next case to start.
    pub(crate) fn next_index(&self) -> u64 {
        self.next.load(Ordering::Relaxed).min(self.end)
    }

    pub(crate) fn exhausted(&self) -> bool {
        self.next_index() >= self.end
    }

    pub(crate) fn stats(&self) -> BTreeMap<Family, FamilyStats> {
        self.stats.lock().expect("stats lock").clone()
    }

    /// Recent cases from `from` on, in index order.
    pub(crate) fn recent_since(&self, from: u64) -> Vec<Recorded> {
        let mut cases: Vec<Recorded> =
            self.recent.lock().expect("recent lock").iter().filter(|r| r.index >= from).cloned().collect();
        cases.sort_by_key(|r| r.index);
        cases
    }

    /// Runs cases on `connections` workers until `until` (each finishes its case).
    pub(crate) async fn run_until(self: &Arc<Self>, until: Instant, connections: usize) {
        let workers: Vec<_> = (0..connections)
            .map(|_| {
                let me = self.clone();
                tokio::spawn(async move { me.worker(until).await })
            })
            .collect();
        for w in workers {
            let _ = w.await;
        }
    }

    async fn worker(&self, until: Instant) {
        while Instant::now() < until {
            let index = self.next.fetch_add(1, Ordering::Relaxed);
            if index >= self.end {
                return;
            }
            let case = generate(self.seed, index, &self.families);
            let addr = match case.target {
                Target::Mqtt => self.mqtt,
                Target::Wyoming => match self.wyoming {
                    Some(a) => a,
                    None => continue,
                },
            };
            self.remember(&case);
            let started = Instant::now();
            let outcome = driver::run(&case, addr, &self.held).await;
            self.finish(&case, &outcome, started.elapsed());
            if !outcome.connected {
                // An engine that takes no connections is for the next check to judge; a
                // worker spinning through refused connects would only bury the suspects.
                tokio::time::sleep(CONNECT_BACKOFF).await;
            }
        }
    }

    fn remember(&self, case: &Case) {
        let record =
            Recorded { index: case.index, line: case.describe(), hex: case.hex(HEX_BYTES_PER_STEP), finished: None };
        let mut recent = self.recent.lock().expect("recent lock");
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(record);
    }

    fn finish(&self, case: &Case, outcome: &Outcome, took: std::time::Duration) {
        self.stats.lock().expect("stats lock").entry(case.family).or_default().add(case, outcome, took);
        let mut recent = self.recent.lock().expect("recent lock");
        if let Some(r) = recent.iter_mut().rev().find(|r| r.index == case.index) {
            r.finished = Some(outcome.closed_by_engine);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_reproducible_and_covers_the_families() {
        let families = Family::ALL.to_vec();
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..400 {
            let a = generate(99, i, &families);
            let b = generate(99, i, &families);
            assert_eq!(a.hex(usize::MAX), b.hex(usize::MAX), "case {i}");
            seen.insert(a.family);
        }
        assert_eq!(seen.len(), Family::ALL.len());
        let mqtt_only: Vec<Family> = Family::ALL.into_iter().filter(|f| !f.needs_voice()).collect();
        assert!((0..200).all(|i| !generate(1, i, &mqtt_only).family.needs_voice()));
    }
}
