//! The front door's packet relay, end to end through the real engine on loopback:
//! a raw-socket publisher writes a batch of QoS 0 PUBLISH packets, a raw-socket
//! subscriber reads until every one arrived. One iteration = one batch through
//! decode → session rules → router → pump → encode → socket, on both io backends.

use std::time::Duration;

use alicia::Engine;
use alicia_config::{AliciaConfig, IoBackend};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BATCH: usize = 1000;
const PAYLOAD: usize = 100;
const TOPIC: &str = "bench/relay";

fn connect_packet(id: &str) -> Vec<u8> {
    let mut p = vec![0x10, (12 + id.len()) as u8, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 60];
    p.extend_from_slice(&(id.len() as u16).to_be_bytes());
    p.extend_from_slice(id.as_bytes());
    p
}

fn publish_packet() -> Vec<u8> {
    let remaining = 2 + TOPIC.len() + PAYLOAD;
    let mut p = vec![0x30, remaining as u8];
    p.extend_from_slice(&(TOPIC.len() as u16).to_be_bytes());
    p.extend_from_slice(TOPIC.as_bytes());
    p.extend(std::iter::repeat_n(0xAB, PAYLOAD));
    p
}

async fn open(port: u16, id: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.set_nodelay(true).unwrap();
    s.write_all(&connect_packet(id)).await.unwrap();
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).await.unwrap();
    assert_eq!(ack, [0x20, 2, 0, 0]);
    s
}

struct Rig {
    engine: Option<Engine>,
    publisher: TcpStream,
    subscriber: TcpStream,
    batch: Vec<u8>,
    delivery_len: usize,
}

async fn rig(io: IoBackend) -> Rig {
    let mut config = AliciaConfig::default();
    config.mqtt.listen = "127.0.0.1:0".parse().unwrap();
    config.http.listen = "127.0.0.1:0".parse().unwrap();
    config.mqtt.io = io;
    config.mqtt.io_threads = 1;
    let engine = Engine::start(config).await.unwrap();
    let port = engine.mqtt_addr().port();
    let mut subscriber = open(port, "bench-sub").await;
    let mut sub = vec![0x82, (5 + TOPIC.len()) as u8, 0, 1];
    sub.extend_from_slice(&(TOPIC.len() as u16).to_be_bytes());
    sub.extend_from_slice(TOPIC.as_bytes());
    sub.push(0);
    subscriber.write_all(&sub).await.unwrap();
    let mut suback = [0u8; 5];
    subscriber.read_exact(&mut suback).await.unwrap();
    let publisher = open(port, "bench-pub").await;
    let one = publish_packet();
    Rig { engine: Some(engine), publisher, subscriber, delivery_len: one.len(), batch: one.repeat(BATCH) }
}

impl Rig {
    async fn relay_batch(&mut self, sink: &mut Vec<u8>) {
        self.publisher.write_all(&self.batch).await.unwrap();
        let want = self.delivery_len * BATCH;
        sink.clear();
        while sink.len() < want {
            if self.subscriber.read_buf(sink).await.unwrap() == 0 {
                panic!("engine closed the subscriber");
            }
        }
    }
}

fn relay(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut group = c.benchmark_group("front_door_relay");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.measurement_time(Duration::from_secs(5));
    for io in [IoBackend::Uring, IoBackend::Epoll] {
        let mut rig = runtime.block_on(rig(io));
        let mut sink = Vec::with_capacity(rig.delivery_len * BATCH * 2);
        group.bench_function(BenchmarkId::new("qos0_100B_x1000", io.as_str()), |b| {
            b.iter(|| runtime.block_on(rig.relay_batch(&mut sink)));
        });
        let engine = rig.engine.take().unwrap();
        runtime.block_on(engine.shutdown());
    }
    group.finish();
}

criterion_group!(benches, relay);
criterion_main!(benches);
