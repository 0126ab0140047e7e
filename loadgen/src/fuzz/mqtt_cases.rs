//! MQTT cases: what one connection does from its first byte to its end. Random bytes
//! instead of a CONNECT and after one; sequences of odd packets with pauses, pieces,
//! a reader that stops, and resets in the middle of a packet; the same sequences
//! mutated byte by byte.

use std::time::Duration;

use super::case::{Case, Ending, Step};
use super::gen::Gen;
use super::mqtt_packets::{any_packet, connect, persistent_connect, plain_publish, plain_subscribe, Conv, V311, V5};

/// Bytes one case may send at most: two packets at the 1 MiB size limit and change.
pub(crate) const CASE_BUDGET: usize = 2_600_000;

pub(crate) fn level(gen: &mut Gen) -> u8 {
    *gen.pick(&[V311, V5])
}

pub(crate) fn ending(gen: &mut Gen) -> Ending {
    match gen.weighted(&[50, 32, 18]) {
        0 => Ending::Close,
        1 => Ending::Reset,
        _ => Ending::HalfClose,
    }
}

pub(crate) fn pause(gen: &mut Gen) -> Step {
    Step::Pause(Duration::from_millis(gen.range(1, 30) as u64))
}

/// Sends most of the time at once, sometimes in small pieces (every partial-read path).
pub(crate) fn send(gen: &mut Gen, case: &mut Case, label: String, bytes: Vec<u8>) {
    let chunk = gen.chance(6).then(|| *gen.pick(&[1usize, 2, 3, 7, 64, 1000]));
    let chunk = chunk.filter(|&c| bytes.len() / c < 4_000);
    case.labels.push(label);
    case.steps.push(Step::Send { bytes, chunk });
}

/// Bytes where a CONNECT should be.
pub(crate) fn raw_connect(gen: &mut Gen, case: &mut Case) {
    let level = level(gen);
    match gen.below(6) {
        0 => {
            let len = gen.len_up_to(70_000).max(1);
            let bytes = gen.bytes(len);
            send(gen, case, format!("{len} random bytes"), bytes);
        }
        1 => {
            let odd = gen.chance(50);
            let (mut bytes, label) = connect(gen, level, odd);
            let flips = mutate(gen, &mut bytes);
            send(gen, case, format!("{label} with {flips} mutations"), bytes);
        }
        2 => {
            let (mut bytes, label) = connect(gen, level, false);
            let cut = gen.below(bytes.len());
            bytes.truncate(cut);
            send(gen, case, format!("{label} cut after {cut} B"), bytes);
        }
        3 => {
            let len = gen.len_up_to(300);
            let mut bytes = vec![0x10];
            bytes.extend(gen.bytes(len));
            send(gen, case, format!("0x10 and {len} random bytes"), bytes);
        }
        4 => {
            let (bytes, label) = *gen.pick(&[
                (&b"GET / HTTP/1.1\r\nHost: alicia\r\n\r\n"[..], "an HTTP request"),
                (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03", "a TLS client hello"),
                (b"SSH-2.0-OpenSSH_9.6\r\n", "an SSH banner"),
                (b"{\"type\": \"describe\"}\n", "a Wyoming event"),
            ]);
            send(gen, case, label.into(), bytes.to_vec());
        }
        _ => {
            let (bytes, label) = connect(gen, level, true);
            case.labels.push(format!("{label} one byte at a time"));
            case.steps.push(Step::Send { bytes, chunk: Some(1) });
        }
    }
    case.ending = ending(gen);
}

/// A valid CONNECT, then random bytes.
pub(crate) fn raw_after_connect(gen: &mut Gen, case: &mut Case) {
    let level = level(gen);
    let (bytes, label) = connect(gen, level, false);
    send(gen, case, label, bytes);
    if gen.chance(50) {
        case.steps.push(pause(gen));
    }
    for _ in 0..gen.range(1, 3) {
        let len = gen.len_up_to(70_000).max(1);
        let bytes = gen.bytes(len);
        send(gen, case, format!("{len} random bytes"), bytes);
    }
    case.ending = ending(gen);
}

/// A CONNECT (now and then an odd one) and a sequence of odd packets; now and then a
/// subscriber that hoards or a publisher that floods instead, so the engine's queues
/// and byte budget fill.
pub(crate) fn packets(gen: &mut Gen, case: &mut Case) {
    match gen.weighted(&[88, 6, 6]) {
        0 => odd_sequence(gen, case),
        1 => hoarder(gen, case),
        _ => flood(gen, case),
    }
}

/// A subscriber to everything that stops reading: the engine queues for it (in-flight
/// window, per-client queue, the byte budget), gives up on it after its write timeout
/// when it stays, and since its session persists, goes on queueing (QoS 1 and 2) after
/// it left, until a later case takes the id over or the session expires.
fn hoarder(gen: &mut Gen, case: &mut Case) {
    let level = level(gen);
    let id = format!("fz-{}", gen.below(48));
    let expiry = *gen.pick(&[60u32, 3_600, u32::MAX]);
    send(
        gen,
        case,
        format!("CONNECT {id} persistent, expiry {expiry}"),
        persistent_connect(level, id.as_bytes(), expiry),
    );
    let filter = *gen.pick(&["#", "fz/#", "fz/flood/+"]);
    let qos = gen.range(0, 2) as u8;
    send(gen, case, format!("SUBSCRIBE {filter} qos{qos}"), plain_subscribe(level, 1, &[filter], qos));
    case.steps.push(Step::StopReading);
    case.labels.push("stop reading".into());
    case.steps.push(Step::Pause(Duration::from_millis(gen.range(100, 800) as u64)));
    case.ending = if gen.chance(40) {
        // Past the engine's write timeout (5 s in the config loadgen gives it).
        Ending::Hold(Duration::from_secs(gen.range(6, 12) as u64))
    } else {
        ending(gen)
    };
}

/// Many QoS 1 messages of up to 900 KiB, for the hoarders.
fn flood(gen: &mut Gen, case: &mut Case) {
    let level = level(gen);
    let (bytes, label) = connect(gen, level, false);
    send(gen, case, label, bytes);
    let size = *gen.pick(&[1_024usize, 65_536, 262_144, 921_600]);
    let count = (CASE_BUDGET / size).min(gen.range(5, 60));
    let topic = format!("fz/flood/{}", gen.below(4));
    for pkid in 1..=count as u16 {
        let payload = gen.bytes(size);
        case.steps
            .push(Step::Send { bytes: plain_publish(level, topic.as_bytes(), 1, pkid, false, &payload), chunk: None });
    }
    case.labels.push(format!("{count} × PUBLISH qos1 {size} B to {topic}"));
    case.ending = ending(gen);
}

fn odd_sequence(gen: &mut Gen, case: &mut Case) {
    let level = level(gen);
    let odd = gen.chance(20);
    let (bytes, label) = connect(gen, level, odd);
    send(gen, case, label, bytes);
    let mut conv = Conv::new(level, CASE_BUDGET);
    let count = gen.len_up_to(24) + 1;
    for _ in 0..count {
        if conv.budget < 16 {
            break;
        }
        let (bytes, label) = any_packet(gen, &mut conv);
        // Payloads were taken from the budget already; the rest of the packet counts too.
        conv.budget = conv.budget.saturating_sub(bytes.len());
        send(gen, case, label, bytes);
        match gen.below(100) {
            0..=19 => case.steps.push(pause(gen)),
            20..=22 => case.steps.push(Step::StopReading),
            _ => {}
        }
    }
    case.ending = ending(gen);
    if gen.chance(8) {
        // Reset in the middle of the last packet.
        if let Some(Step::Send { bytes, .. }) = case.steps.iter_mut().rev().find(|s| matches!(s, Step::Send { .. })) {
            let cut = gen.below(bytes.len().max(1));
            bytes.truncate(cut);
            case.labels.push(format!("last packet cut after {cut} B"));
        }
        case.ending = Ending::Reset;
    }
}

/// A packet sequence with bytes flipped, inserted, dropped or repeated, sent as one
/// stream.
pub(crate) fn mutated(gen: &mut Gen, case: &mut Case) {
    let mut inner = Case::new(case.index, case.family, case.target);
    odd_sequence(gen, &mut inner);
    let mut stream: Vec<u8> = inner
        .steps
        .iter()
        .flat_map(|s| if let Step::Send { bytes, .. } = s { bytes.clone() } else { Vec::new() })
        .collect();
    let count = mutate(gen, &mut stream);
    let what = inner.labels.first().cloned().unwrap_or_default();
    send(gen, case, format!("{} packets from {what}, {count} mutations", inner.labels.len()), stream);
    case.ending = inner.ending;
}

/// Applies 1-8 mutations to `bytes`; returns how many.
pub(crate) fn mutate(gen: &mut Gen, bytes: &mut Vec<u8>) -> usize {
    let count = gen.range(1, 8);
    for _ in 0..count {
        if bytes.is_empty() {
            bytes.push(gen.u8());
            continue;
        }
        let at = gen.below(bytes.len());
        match gen.below(7) {
            0 => bytes[at] ^= 1 << gen.below(8),
            1 => bytes[at] = *gen.pick(&[0x00u8, 0x01, 0x7f, 0x80, 0xff, 0x10, 0x30]),
            2 => {
                let len = gen.range(1, 16);
                let junk = gen.bytes(len);
                bytes.splice(at..at, junk);
            }
            3 => {
                let end = (at + gen.range(1, 64)).min(bytes.len());
                bytes.drain(at..end);
            }
            4 => {
                let end = (at + gen.range(1, 256)).min(bytes.len());
                let copy = bytes[at..end].to_vec();
                bytes.splice(at..at, copy);
            }
            5 => {
                let other = gen.below(bytes.len());
                bytes.swap(at, other);
            }
            _ => bytes.truncate(at),
        }
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::case::{Family, Target};

    #[test]
    fn cases_stay_within_budget_and_have_bytes() {
        for i in 0..300 {
            let mut g = Gen::for_case(5, i);
            for family in [Family::RawConnect, Family::RawAfterConnect, Family::Packets, Family::Mutated] {
                let mut case = Case::new(i, family, Target::Mqtt);
                match family {
                    Family::RawConnect => raw_connect(&mut g, &mut case),
                    Family::RawAfterConnect => raw_after_connect(&mut g, &mut case),
                    Family::Packets => packets(&mut g, &mut case),
                    _ => mutated(&mut g, &mut case),
                }
                assert!(!case.steps.is_empty(), "{}", case.describe());
                assert!(case.bytes_len() <= CASE_BUDGET + 400_000, "{}", case.describe());
            }
        }
    }

    #[test]
    fn mutations_change_the_bytes() {
        let mut g = Gen::for_case(9, 9);
        let original = b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02fz".to_vec();
        let changed = (0..20).filter(|_| {
            let mut b = original.clone();
            mutate(&mut g, &mut b);
            b != original
        });
        assert!(changed.count() >= 15);
    }
}
