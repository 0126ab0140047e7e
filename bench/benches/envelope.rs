//! Envelope codec cost: decode + full validation, and encode, of a typical
//! voice-pipeline envelope (~300 bytes, the size of an STT response).

use std::hint::black_box;

use alicia_envelope::Envelope;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// An STT response as the pipeline sends it: every required field, priority,
/// ttl, a small data object, session metadata and routing.
const TYPICAL: &str = r#"{"message_id":"6f1c1f2e-8a4b-4c3d-9e5f-0a1b2c3d4e5f","timestamp":"2025-01-08T14:30:00.123Z","source":"stt_service","destination":"voice_router","message_type":"response","priority":"high","ttl":300,"payload":{"data":{"transcription":"turn on the lights","confidence":0.93},"metadata":{"session_id":"s-123"}},"routing":{"hops":1,"max_hops":10}}"#;

fn codec(c: &mut Criterion) {
    let bytes = TYPICAL.as_bytes();
    let envelope = Envelope::decode(bytes).expect("the bench envelope is valid");
    assert!((250..=350).contains(&bytes.len()), "keep the typical envelope near 300 bytes");

    let mut group = c.benchmark_group("envelope");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("decode_validate", |b| b.iter(|| Envelope::decode(black_box(bytes))));
    group.bench_function("encode", |b| b.iter(|| black_box(&envelope).encode()));
    // The floor: parsing the same bytes into an untyped value, no checks.
    group.bench_function("baseline_serde_json_value", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(bytes)))
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
