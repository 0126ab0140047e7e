//! `alicia-loadgen`: drives MQTT brokers over real TCP connections the way a house full
//! of devices would, measures delivery rate, loss and latency, and fails CI when a target
//! is missed.
//!
//! # Layout
//!
//! | module | concept |
//! |---|---|
//! | `wire` | lean MQTT 3.1.1 codec (encode into a reused buffer, decode borrowed frames) |
//! | `connection` | CONNECT/CONNACK and SUBSCRIBE/SUBACK with timeouts |
//! | `probe` | the 16-byte send-time + sequence header of every payload |
//! | `pacer` | fixed-rate pacing that does not drift |
//! | `progress` | the closed loop of `--rate max`: publishers stay a bounded lead ahead |
//! | `publisher`, `subscriber` | one connection's load loop each |
//! | `stats` | loss/duplicate/reorder accounting and latency histograms |
//! | `run` | one P × S run: phases, counters, results |
//! | `gates` | pass/fail targets |
//! | `report`, `machine` | tables, JSON, markdown; host facts and CPU use |
//! | `throughput`, `compare`, `voice` | the scenarios (`voice`: spoken requests to the engine's voice plane) |
//! | `connections`, `large`, `hostile` | idle connections held, one huge message, misbehaving clients |
//! | `session`, `pump` | one MQTT session over TCP or TLS; QoS 1 P × S with a fixed message count, PUBACK times, persistent sessions |
//! | `durability` | QoS 1 with the engine's store off / batch / always beside mosquitto with persistence; restart with 100k retained and 1,000 sessions |
//! | `tls` | the MQTT-over-TLS listener: connections held while handshakes stall, TLS vs TCP |
//! | `fuzz` | arbitrary and odd MQTT, envelopes, Wyoming and voice audio against a live engine, with its vitals checked |
//! | `brokers`, `baseline` | starting and stopping brokers; rumqttd with its own listener |
//! | `engine_process`, `engine_config` | the engine with all its listeners; a config written for one run |
//! | `packet`, `client` | MQTT 3.1.1 + 5 packets byte for byte; one scripted conversation |
//! | `ordinary` | an ordinary client's round trip: is the bus still usable? |
//! | `memory`, `rlimit`, `http` | a process's resident memory; the open-file limit; a bare HTTP GET |

pub mod baseline;
pub mod brokers;
mod client;
pub mod compare;
mod connection;
pub mod connections;
pub mod durability;
mod engine_config;
mod engine_process;
pub mod fuzz;
pub mod gates;
pub mod hostile;
mod http;
pub mod large;
mod machine;
mod memory;
mod ordinary;
pub mod pacer;
mod packet;
mod probe;
mod progress;
mod publisher;
mod pump;
mod report;
mod rlimit;
pub mod run;
mod session;
mod stats;
mod subscriber;
pub mod throughput;
pub mod tls;
pub mod voice;
mod wire;

pub use packet::Version;

/// What a command found: missed targets and things that went wrong on the way.
#[derive(Debug, Default)]
pub struct Verdict {
    pub gate_failures: Vec<String>,
    pub problems: Vec<String>,
}

impl Verdict {
    /// 0 all good, 1 the measurement itself had problems, 2 a target was missed.
    pub fn exit_code(&self) -> i32 {
        if !self.problems.is_empty() {
            1
        } else if !self.gate_failures.is_empty() {
            2
        } else {
            0
        }
    }

    pub fn print(&self) {
        for p in &self.problems {
            eprintln!("error: {p}");
        }
        for g in &self.gate_failures {
            eprintln!("target missed: {g}");
        }
    }
}
