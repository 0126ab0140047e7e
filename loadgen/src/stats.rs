//! What a subscriber learns from its deliveries, and how the subscribers' views merge.
//!
//! Throughput alone hides a broker that is fast because it drops: every delivery is
//! checked against the per-publisher sequence, so loss, duplicates and reordering are
//! counted exactly (a bitset per publisher, one bit per sequence number). Latency goes
//! into an hdrhistogram at microsecond precision; histograms add losslessly, so the
//! merged percentiles are those of all deliveries, not an average of averages.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Sequence numbers beyond this are treated as corrupt rather than grown into.
const MAX_SEQ: u64 = 1 << 34;

/// Highest latency the histogram tracks (60 s); slower deliveries saturate into it.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Epoch-nanosecond interval `[start, end)` whose sends and receipts count in the results.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start_ns: u64,
    pub end_ns: u64,
}

impl Window {
    pub fn contains(&self, ns: u64) -> bool {
        ns >= self.start_ns && ns < self.end_ns
    }
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("static histogram bounds are valid")
}

/// Deliveries from one publisher, as seen by one subscriber.
#[derive(Debug, Default, Clone)]
pub struct SeqTracker {
    seen: Vec<u64>,
    next: u64,
    pub unique: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
}

impl SeqTracker {
    /// Highest sequence number seen + 1.
    pub fn next(&self) -> u64 {
        self.next
    }

    /// Records one arrival; false if the sequence number is implausible.
    pub fn record(&mut self, seq: u64) -> bool {
        if seq >= MAX_SEQ {
            return false;
        }
        let (word, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if word >= self.seen.len() {
            self.seen.resize((word + 1).next_power_of_two(), 0);
        }
        if self.seen[word] & bit != 0 {
            self.duplicates += 1;
            return true;
        }
        self.seen[word] |= bit;
        self.unique += 1;
        if seq < self.next {
            self.out_of_order += 1;
        } else {
            self.next = seq + 1;
        }
        true
    }
}

/// Everything one subscriber measured.
#[derive(Debug, Clone)]
pub struct SubscriberStats {
    pub per_publisher: Vec<SeqTracker>,
    pub latency: Histogram<u64>,
    pub received: u64,
    pub received_in_window: u64,
    /// Deliveries on a topic or with a payload this run did not send.
    pub foreign: u64,
}

impl SubscriberStats {
    pub fn new(publishers: usize) -> Self {
        SubscriberStats {
            per_publisher: vec![SeqTracker::default(); publishers],
            latency: new_histogram(),
            received: 0,
            received_in_window: 0,
            foreign: 0,
        }
    }

    /// Records a delivery from `publisher` received at `now_ns` (epoch nanos).
    pub fn record(&mut self, publisher: usize, seq: u64, sent_ns: u64, now_ns: u64, window: &Window) {
        self.received += 1;
        if window.contains(now_ns) {
            self.received_in_window += 1;
        }
        let Some(tracker) = self.per_publisher.get_mut(publisher) else {
            self.foreign += 1;
            return;
        };
        if !tracker.record(seq) {
            self.foreign += 1;
            return;
        }
        // Latency of messages sent in the window, wherever they arrive: cutting at the
        // receive side would hide the slowest deliveries of an overloaded broker.
        if window.contains(sent_ns) {
            self.latency.saturating_record(now_ns.saturating_sub(sent_ns) / 1_000);
        }
    }

    /// Totals for this subscriber given how many messages each publisher sent.
    pub fn summary(&self, sent_per_publisher: &[u64]) -> DeliverySummary {
        let mut s = DeliverySummary { received: self.received, foreign: self.foreign, ..Default::default() };
        for (tracker, &sent) in self.per_publisher.iter().zip(sent_per_publisher) {
            s.unique += tracker.unique;
            s.lost += sent.saturating_sub(tracker.unique);
            s.duplicates += tracker.duplicates;
            s.out_of_order += tracker.out_of_order;
        }
        s
    }
}

/// Delivery counts for one subscriber, or summed over all of them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeliverySummary {
    pub received: u64,
    pub unique: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub foreign: u64,
}

impl DeliverySummary {
    pub fn add(&mut self, other: &DeliverySummary) {
        self.received += other.received;
        self.unique += other.unique;
        self.lost += other.lost;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.foreign += other.foreign;
    }
}

/// Percentiles in milliseconds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Serialize)]
pub struct LatencySummary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl LatencySummary {
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1_000.0;
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            mean_ms: h.mean() / 1_000.0,
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
        }
    }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: impl IntoIterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    Some(if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 })
}

/// Merges subscriber histograms into one.
pub fn merge_latency<'a>(parts: impl IntoIterator<Item = &'a Histogram<u64>>) -> Histogram<u64> {
    let mut all = new_histogram();
    for h in parts {
        all.add(h).expect("histograms share bounds");
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Window = Window { start_ns: 0, end_ns: u64::MAX };

    #[test]
    fn tracker_counts_duplicates_and_reordering() {
        let mut t = SeqTracker::default();
        for seq in [0, 1, 3, 2, 2, 5, 200] {
            assert!(t.record(seq));
        }
        assert_eq!((t.unique, t.duplicates, t.out_of_order), (6, 1, 1));
        assert!(!t.record(MAX_SEQ));
    }

    #[test]
    fn summary_counts_loss_against_what_was_sent() {
        let mut s = SubscriberStats::new(2);
        for seq in 0..10 {
            s.record(0, seq, 0, 1_000, &ALL);
        }
        for seq in [0, 1, 3] {
            s.record(1, seq, 0, 1_000, &ALL);
        }
        s.record(7, 0, 0, 1_000, &ALL);
        let sum = s.summary(&[10, 5]);
        assert_eq!(
            sum,
            DeliverySummary { received: 14, unique: 13, lost: 2, duplicates: 0, out_of_order: 0, foreign: 1 }
        );
    }

    #[test]
    fn window_bounds_rates_and_latency() {
        let window = Window { start_ns: 1_000_000, end_ns: 2_000_000 };
        let mut s = SubscriberStats::new(1);
        s.record(0, 0, 500_000, 1_500_000, &window); // sent in warm-up: no latency sample
        s.record(0, 1, 1_200_000, 1_700_000, &window); // 500 µs
        s.record(0, 2, 1_900_000, 2_900_000, &window); // received in drain: latency, no rate
        assert_eq!((s.received, s.received_in_window, s.latency.len()), (3, 2, 2));
    }

    #[test]
    fn merged_percentiles_cover_all_subscribers() {
        let mut a = SubscriberStats::new(1);
        let mut b = SubscriberStats::new(1);
        for i in 0..90u64 {
            a.record(0, i, 0, 1_000_000, &ALL); // 1 ms
        }
        for i in 0..10u64 {
            b.record(0, i, 0, 50_000_000, &ALL); // 50 ms
        }
        let merged = merge_latency([&a.latency, &b.latency]);
        let l = LatencySummary::from_histogram(&merged);
        assert_eq!(l.count, 100);
        assert!((l.p50_ms - 1.0).abs() < 0.01, "{l:?}");
        assert!((l.p99_ms - 50.0).abs() < 0.1, "{l:?}");
        let mut total = a.summary(&[90]);
        total.add(&b.summary(&[90]));
        assert_eq!((total.unique, total.lost), (100, 80));
    }
}
