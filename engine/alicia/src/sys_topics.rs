//! `$SYS/broker/...` as mosquitto publishes them: every `[mqtt] sys_interval_secs`,
//! retained, read from the engine's own meters (the Prometheus registry), so the
//! numbers are the ones `/metrics` shows. `#` never matches a `$` topic (MQTT 4.7.2);
//! `mosquitto_sub -t '$SYS/#'` gets them all.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use alicia_broker::LocalClient;
use bytes::Bytes;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;

/// The loads' windows, as mosquitto's `load/.../1min|5min|15min`.
const LOAD_WINDOWS: [(&str, f64); 3] = [("1min", 60.0), ("5min", 300.0), ("15min", 900.0)];

/// The counters whose rates are published as loads, and their `$SYS` names.
const LOADS: [(&str, &str); 5] = [
    ("messages/received", "alicia_mqtt_packets_received_total"),
    ("messages/sent", "alicia_mqtt_publishes_sent_total"),
    ("bytes/received", "alicia_mqtt_received_bytes_total"),
    ("bytes/sent", "alicia_mqtt_sent_bytes_total"),
    ("connections", "alicia_mqtt_sockets_accepted_total"),
];

pub(crate) async fn run(mut client: LocalClient, meters: PrometheusHandle, every: Duration, stop: CancellationToken) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut state = SysState::default();
    let mut warned = false;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let values = sums(&meters.render());
        for (topic, value) in state.topics(&values, started.elapsed(), every) {
            if let Err(e) = client.publish(topic, Bytes::from(value), true).await {
                // Once: the retained store being full (or an ACL without the grant)
                // would say the same every interval.
                if !warned {
                    tracing::warn!(error = %e, "$SYS not published (said once)");
                    warned = true;
                }
                break;
            }
        }
    }
}

/// What the topics need from one interval to the next.
#[derive(Default)]
struct SysState {
    clients_maximum: f64,
    /// The counters at the previous tick, and the loads (per minute) so far.
    previous: HashMap<&'static str, f64>,
    loads: HashMap<(&'static str, &'static str), f64>,
}

impl SysState {
    fn topics(&mut self, values: &HashMap<String, f64>, uptime: Duration, every: Duration) -> Vec<(String, String)> {
        let get = |name: &str| values.get(name).copied().unwrap_or(0.0);
        let connected = get("alicia_mqtt_connections_active");
        let total = get("alicia_mqtt_sessions");
        self.clients_maximum = self.clients_maximum.max(connected);
        let mut topics = vec![
            ("version".to_string(), format!("alicia {}", env!("CARGO_PKG_VERSION"))),
            ("uptime".to_string(), format!("{} seconds", uptime.as_secs())),
            ("clients/connected".to_string(), count(connected)),
            ("clients/total".to_string(), count(total)),
            ("clients/disconnected".to_string(), count((total - connected).max(0.0))),
            ("clients/maximum".to_string(), count(self.clients_maximum)),
            ("messages/received".to_string(), count(get("alicia_mqtt_packets_received_total"))),
            ("messages/sent".to_string(), count(get("alicia_mqtt_publishes_sent_total"))),
            ("publish/messages/received".to_string(), count(get("alicia_mqtt_publishes_received_total"))),
            ("publish/messages/sent".to_string(), count(get("alicia_mqtt_publishes_sent_total"))),
            ("publish/messages/dropped".to_string(), count(get("alicia_mqtt_messages_dropped_total"))),
            ("bytes/received".to_string(), count(get("alicia_mqtt_received_bytes_total"))),
            ("bytes/sent".to_string(), count(get("alicia_mqtt_sent_bytes_total"))),
            ("subscriptions/count".to_string(), count(get("alicia_mqtt_subscriptions"))),
            ("retained messages/count".to_string(), count(get("alicia_mqtt_retained_messages"))),
        ];
        let seconds = every.as_secs_f64().max(0.001);
        for (name, metric) in LOADS {
            let now = get(metric);
            let before = self.previous.insert(metric, now);
            // The first tick has no interval behind it: its load is its own.
            let per_minute = before.map_or(0.0, |b| (now - b).max(0.0) / seconds * 60.0);
            for (window, span) in LOAD_WINDOWS {
                let decay = (-seconds / span).exp();
                let load = self.loads.entry((name, window)).or_insert(per_minute);
                *load = *load * decay + per_minute * (1.0 - decay);
                topics.push((format!("load/{name}/{window}"), format!("{:.2}", *load)));
            }
        }
        topics.into_iter().map(|(topic, value)| (format!("$SYS/broker/{topic}"), value)).collect()
    }
}

fn count(value: f64) -> String {
    format!("{}", value.round() as u64)
}

/// Each metric of a Prometheus text page, summed over its label sets.
fn sums(page: &str) -> HashMap<String, f64> {
    let mut sums = HashMap::new();
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else { continue };
        let Ok(value) = value.parse::<f64>() else { continue };
        let name = series.split('{').next().unwrap_or(series);
        *sums.entry(name.to_string()).or_insert(0.0) += value;
    }
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_add_every_label_set() {
        let page = "# TYPE x counter\nx{listener=\"tcp\"} 3\nx{listener=\"tls\"} 4\ny 1.5\n";
        let sums = sums(page);
        assert_eq!((sums["x"], sums["y"]), (7.0, 1.5));
    }

    #[test]
    fn topics_follow_mosquitto_and_loads_track_rates() {
        let mut state = SysState::default();
        let mut values: HashMap<String, f64> = [
            ("alicia_mqtt_connections_active", 3.0),
            ("alicia_mqtt_sessions", 5.0),
            ("alicia_mqtt_packets_received_total", 0.0),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
        let every = Duration::from_secs(10);
        let first: HashMap<String, String> =
            state.topics(&values, Duration::from_secs(10), every).into_iter().collect();
        assert_eq!(first["$SYS/broker/clients/connected"], "3");
        assert_eq!(first["$SYS/broker/clients/disconnected"], "2");
        assert_eq!(first["$SYS/broker/uptime"], "10 seconds");
        assert!(first.contains_key("$SYS/broker/retained messages/count"));
        // 100 packets in 10 s is 600 a minute; the 1-minute load moves most of the way.
        values.insert("alicia_mqtt_packets_received_total".into(), 100.0);
        values.insert("alicia_mqtt_connections_active".into(), 1.0);
        let second: HashMap<String, String> =
            state.topics(&values, Duration::from_secs(20), every).into_iter().collect();
        let one: f64 = second["$SYS/broker/load/messages/received/1min"].parse().unwrap();
        let fifteen: f64 = second["$SYS/broker/load/messages/received/15min"].parse().unwrap();
        assert!(one > 80.0 && one < 600.0 && fifteen < one, "{one} {fifteen}");
        assert_eq!(second["$SYS/broker/clients/maximum"], "3");
    }
}
