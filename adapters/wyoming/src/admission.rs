//! Who gets a connection: at most `max_connections` at once, and at most
//! `max_connections_per_source` from one IP address, so one host cannot take every
//! slot. A refused client is told why (an `error` event) and closed at once, instead
//! of waiting unseen in the listen backlog.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use metrics::Gauge;

use crate::error::RequestError;

pub(crate) struct Admission {
    max_total: usize,
    max_per_source: usize,
    /// Connections open now: in total, and by source (entries leave at zero, so the
    /// map never holds more than `max_total` addresses).
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
    gauge: Gauge,
}

/// A connection's slot, given back when it is dropped.
pub(crate) struct Admitted {
    admission: Arc<Admission>,
    source: IpAddr,
}

impl Admission {
    pub(crate) fn new(max_total: usize, max_per_source: usize, gauge: Gauge) -> Arc<Admission> {
        Arc::new(Admission { max_total, max_per_source, open: Mutex::new((0, HashMap::new())), gauge })
    }

    /// A slot for a client from `source`, or why there is none.
    pub(crate) fn admit(self: &Arc<Self>, source: IpAddr) -> Result<Admitted, RequestError> {
        // An IPv4 client on a dual-stack socket is the same host as over IPv4.
        let source = source.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (total, by_source) = &mut *open;
        if *total >= self.max_total {
            return Err(RequestError::TooManyConnections { limit: self.max_total });
        }
        let from_source = by_source.entry(source).or_insert(0);
        if *from_source >= self.max_per_source {
            return Err(RequestError::TooManyConnectionsFromSource { address: source, limit: self.max_per_source });
        }
        *from_source += 1;
        *total += 1;
        self.gauge.increment(1.0);
        Ok(Admitted { admission: Arc::clone(self), source })
    }
}

impl Drop for Admitted {
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

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn slots_are_capped_in_total_and_per_source_and_given_back() {
        let admission = Admission::new(3, 2, Gauge::noop());
        let a1 = admission.admit(ip("10.0.0.1")).unwrap();
        let _a2 = admission.admit(ip("::ffff:10.0.0.1")).unwrap();
        let refused = admission.admit(ip("10.0.0.1")).err().unwrap();
        assert_eq!(refused.to_string(), "too many connections from 10.0.0.1: at most 2 at once");
        let _b1 = admission.admit(ip("10.0.0.2")).unwrap();
        let refused = admission.admit(ip("10.0.0.3")).err().unwrap();
        assert_eq!(refused.to_string(), "too many connections: this server serves 3 at once; try again later");
        drop(a1);
        assert!(admission.admit(ip("10.0.0.3")).is_ok());
        assert_eq!(admission.open.lock().unwrap().1.len(), 2, "a source with no connection is forgotten");
    }
}
