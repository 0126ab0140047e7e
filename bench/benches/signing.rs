//! Signed envelopes: the cost of signing a typical device command (every member
//! spelled out, ~330 bytes, ~440 once signed), of verifying it on ingress, and of
//! verifying plus AES-256-GCM decrypting.

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use alicia_signing::{sign, sign_encrypted, Keyring, Verifier};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// A light command from the voice router, unsigned; `{id}` is replaced per copy.
const COMMAND: &str = r#"{"message_id":"{id}","timestamp":"2025-01-08T14:30:00.123Z","source":"voice_router","destination":"device_id:kitchen_light_001","message_type":"command","priority":"high","ttl":30,"payload":{"data":{"command":"turn_on","brightness":80},"metadata":{}},"routing":{"hops":0,"max_hops":10,"route":[]}}"#;
/// Distinct messages cycled through, more than the replay cache holds, so every verify
/// is accepted and evicts one entry: the steady state of a busy bus.
const MESSAGES: usize = 4096;
const REPLAY_CAPACITY: usize = 1024;

fn keyring() -> Keyring {
    let mut keyring = Keyring::new();
    keyring.insert("engine", [7; 32]).expect("a fresh keyring takes the key");
    keyring
}

fn command(index: usize) -> String {
    COMMAND.replace("{id}", &format!("6f1c1f2e-8a4b-4c3d-9e5f-{index:012x}"))
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_736_346_600)
}

/// Verifies a cycle of pre-signed messages; checks one full cycle is accepted first.
fn verify_cycle(signed: &[Vec<u8>]) -> impl FnMut() -> bool + '_ {
    let verifier = Verifier::new(keyring(), Duration::from_secs(300), REPLAY_CAPACITY);
    assert!(signed.iter().all(|bytes| verifier.verify(bytes, now()).is_ok()), "the bench envelopes verify");
    let mut next = 0;
    move || {
        next = (next + 1) % signed.len();
        verifier.verify(black_box(&signed[next]), now()).is_ok()
    }
}

fn signing(c: &mut Criterion) {
    let keyring = keyring();
    let plain: Vec<String> = (0..MESSAGES).map(command).collect();
    let signed: Vec<Vec<u8>> = plain.iter().map(|text| sign(text.as_bytes(), "engine", &keyring).unwrap()).collect();
    let sealed: Vec<Vec<u8>> =
        plain.iter().map(|text| sign_encrypted(text.as_bytes(), "engine", &keyring).unwrap()).collect();
    assert!((400..=480).contains(&signed[0].len()), "keep the signed command near 440 bytes: {}", signed[0].len());

    let mut group = c.benchmark_group("signing");
    group.throughput(Throughput::Bytes(signed[0].len() as u64));
    group.bench_function("sign", |b| b.iter(|| sign(black_box(plain[0].as_bytes()), "engine", &keyring)));
    group.bench_function("sign_encrypted", |b| {
        b.iter(|| sign_encrypted(black_box(plain[0].as_bytes()), "engine", &keyring))
    });
    let mut verify = verify_cycle(&signed);
    group.bench_function("verify", |b| b.iter(&mut verify));
    let mut verify_decrypt = verify_cycle(&sealed);
    group.bench_function("verify_decrypt", |b| b.iter(&mut verify_decrypt));
    // The floor: parsing, then refusing at the first check (no `security`).
    let refuser = Verifier::new(Keyring::new(), Duration::from_secs(300), 1);
    let unsigned = plain[0].as_bytes();
    group.bench_function("refuse_unsigned", |b| b.iter(|| refuser.verify(black_box(unsigned), now()).is_err()));
    group.finish();
}

criterion_group!(benches, signing);
criterion_main!(benches);
