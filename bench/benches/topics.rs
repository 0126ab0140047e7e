//! Topic routing helpers on the hot path: MQTT filter matching for typical
//! subscriptions, and legacy-alias resolution for a hit and for the common miss.

use std::hint::black_box;

use alicia_envelope::topics::{self, topic_matches, TopicAliases};
use criterion::{criterion_group, criterion_main, Criterion};

fn matching(c: &mut Criterion) {
    let topic = "alicia/devices/sonos_kitchen_001/command";
    let cases = [
        ("exact", topic),
        ("plus", "alicia/devices/+/command"),
        ("hash", "alicia/devices/#"),
        ("miss_first_level", "alicia/voice/#"),
        ("miss_last_level", "alicia/devices/+/status"),
    ];
    let mut group = c.benchmark_group("topic_matches");
    for (name, filter) in cases {
        group.bench_function(name, |b| b.iter(|| topic_matches(black_box(filter), black_box(topic))));
    }
    group.finish();

    c.bench_function("is_request_topic", |b| {
        b.iter(|| topics::is_request_topic(black_box("alicia/voice/audio/kitchen/frame")))
    });
}

fn aliases(c: &mut Criterion) {
    let aliases = TopicAliases::defaults();
    let mut group = c.benchmark_group("alias_resolve");
    group.bench_function("miss", |b| b.iter(|| aliases.resolve(black_box("alicia/voice/stt/request"))));
    group.bench_function("hit_exact", |b| b.iter(|| aliases.resolve(black_box("alicia/voice/stt/result"))));
    group.bench_function("hit_plus", |b| b.iter(|| aliases.resolve(black_box("alicia/health/status/stt_service"))));
    group.finish();
}

criterion_group!(benches, matching, aliases);
criterion_main!(benches);
