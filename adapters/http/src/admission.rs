//! Who gets a connection: at most `max_connections` at once and at most
//! `max_connections_per_source` from one IP address, so one host (or a flood from it)
//! cannot take every slot from a load balancer's health probe.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use metrics::Gauge;

/// Why a connection was refused: the limit it ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    Total,
    Source,
}

pub(crate) struct Admission {
    max_total: usize,
    max_per_source: usize,
    /// Open now, in total and by source; a source leaves the map at zero.
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    gauge: Gauge,
}

/// A connection's slot, given back on drop.
pub(crate) struct Slot {
    admission: Arc<Admission>,
    source: IpAddr,
}

impl Admission {
    pub(crate) fn new(max_total: usize, max_per_source: usize, gauge: Gauge) -> Arc<Admission> {
        Arc::new(Admission { max_total, max_per_source, open: Mutex::new((0, HashMap::new())), gauge })
    }

    pub(crate) fn admit(self: &Arc<Self>, source: IpAddr) -> Result<Slot, Full> {
        let source = source.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (total, by_source) = &mut *open;
        if *total >= self.max_total {
            return Err(Full::Total);
        }
        let from_source = by_source.entry(source).or_insert(0);
        if *from_source >= self.max_per_source {
            return Err(Full::Source);
        }
        *from_source += 1;
        *total += 1;
        self.gauge.increment(1.0);
        Ok(Slot { admission: Arc::clone(self), source })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.admission.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (total, by_source) = &mut *open;
        *total -= 1;
        if let Some(count) = by_source.get_mut(&self.source) {
            *count -= 1;
            if *count == 0 {
                by_source.remove(&self.source);
            }
        }
        self.admission.gauge.decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_in_total_and_per_source_and_given_back() {
        let admission = Admission::new(3, 2, Gauge::noop());
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let first = admission.admit(ip("10.0.0.1")).ok().unwrap();
        let _second = admission.admit(ip("10.0.0.1")).ok().unwrap();
        assert_eq!(admission.admit(ip("::ffff:10.0.0.1")).err(), Some(Full::Source));
        let _other = admission.admit(ip("10.0.0.2")).ok().unwrap();
        assert_eq!(admission.admit(ip("10.0.0.3")).err(), Some(Full::Total));
        drop(first);
        assert!(admission.admit(ip("10.0.0.3")).is_ok());
    }
}
