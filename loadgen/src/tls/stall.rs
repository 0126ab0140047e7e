//! Sockets that open a TLS handshake and never finish it: the first bytes of a
//! ClientHello, then silence. Each one holds a handshake task (and a pending slot) in the
//! engine until `connect_timeout_ms`; the scenario checks they delay no one meanwhile and
//! that the engine really closes them at its deadline, and when.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// A TLS record header announcing a 512-byte handshake record, the header of a
/// ClientHello of 508 bytes, TLS 1.2 as the legacy version and the first 10 bytes of the
/// random: enough that the server has started parsing a ClientHello and waits for more.
pub const PARTIAL_CLIENT_HELLO: [u8; 21] =
    [0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10];

/// How one stalled socket ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StallEnd {
    /// The engine closed it (FIN) this long after the partial ClientHello.
    Closed(Duration),
    /// The engine reset it this long after.
    Reset(Duration),
    /// Still open when loadgen stopped watching.
    StillOpen,
    /// The TCP connect or the write failed: it never stalled anything.
    NotOpened,
}

/// The stalled sockets, watched until the engine ends them or `watch_for` passes.
pub struct Stalls {
    open: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<(StallEnd, usize)>>,
}

impl Stalls {
    /// Opens `count` sockets to `addr`, each sending [`PARTIAL_CLIENT_HELLO`]; returns once
    /// every one has sent it (or failed).
    pub async fn open(addr: std::net::SocketAddr, count: usize, watch_for: Duration) -> Stalls {
        let open = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::with_capacity(count);
        let mut sent = Vec::with_capacity(count);
        for _ in 0..count {
            let (tx, rx) = tokio::sync::oneshot::channel();
            tasks.push(tokio::spawn(stall(addr, open.clone(), watch_for, tx)));
            sent.push(rx);
        }
        for rx in sent {
            let _ = rx.await;
        }
        Stalls { open, tasks }
    }

    /// Sockets the engine has not closed yet.
    pub fn still_open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Waits for every socket's end; also returns the bytes the engine sent on each.
    pub async fn finish(self) -> Vec<(StallEnd, usize)> {
        let mut ends = Vec::with_capacity(self.tasks.len());
        for t in self.tasks {
            ends.push(t.await.unwrap_or((StallEnd::NotOpened, 0)));
        }
        ends
    }
}

async fn stall(
    addr: std::net::SocketAddr,
    open: Arc<AtomicUsize>,
    watch_for: Duration,
    sent: tokio::sync::oneshot::Sender<()>,
) -> (StallEnd, usize) {
    let Ok(mut tcp) = TcpStream::connect(addr).await else {
        let _ = sent.send(());
        return (StallEnd::NotOpened, 0);
    };
    if tcp.write_all(&PARTIAL_CLIENT_HELLO).await.is_err() {
        let _ = sent.send(());
        return (StallEnd::NotOpened, 0);
    }
    let stalled_at = Instant::now();
    open.fetch_add(1, Ordering::AcqRel);
    let _ = sent.send(());
    let mut received = 0;
    let mut sink = [0u8; 512];
    let end = loop {
        let left = watch_for.saturating_sub(stalled_at.elapsed());
        match tokio::time::timeout(left, tcp.read(&mut sink)).await {
            Err(_) => break StallEnd::StillOpen,
            Ok(Ok(0)) => break StallEnd::Closed(stalled_at.elapsed()),
            Ok(Ok(n)) => received += n, // an alert, say; the socket may still be open
            Ok(Err(_)) => break StallEnd::Reset(stalled_at.elapsed()),
        }
    };
    open.fetch_sub(1, Ordering::AcqRel);
    (end, received)
}

/// What the stalled sockets came to, for the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StallSummary {
    pub opened: usize,
    pub not_opened: usize,
    pub closed_by_engine: usize,
    pub reset_by_engine: usize,
    pub still_open: usize,
    /// Bytes the engine sent on them in all (a TLS alert is 7).
    pub bytes_from_engine: usize,
    /// Time from the partial ClientHello to the engine's close, over the closed ones.
    pub closed_after_min_s: Option<f64>,
    pub closed_after_max_s: Option<f64>,
}

impl StallSummary {
    pub fn of(ends: &[(StallEnd, usize)]) -> StallSummary {
        let mut s = StallSummary::default();
        let mut after = Vec::new();
        for &(end, bytes) in ends {
            s.bytes_from_engine += bytes;
            match end {
                StallEnd::Closed(d) => {
                    s.closed_by_engine += 1;
                    after.push(d.as_secs_f64());
                }
                StallEnd::Reset(d) => {
                    s.reset_by_engine += 1;
                    after.push(d.as_secs_f64());
                }
                StallEnd::StillOpen => s.still_open += 1,
                StallEnd::NotOpened => s.not_opened += 1,
            }
        }
        s.opened = ends.len() - s.not_opened;
        s.closed_after_min_s = after.iter().copied().reduce(f64::min);
        s.closed_after_max_s = after.iter().copied().reduce(f64::max);
        s
    }

    /// Ended by the engine (closed or reset).
    pub fn ended(&self) -> usize {
        self.closed_by_engine + self.reset_by_engine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_partial_hello_is_a_consistent_prefix() {
        let h = &PARTIAL_CLIENT_HELLO;
        assert_eq!((h[0], h[5]), (0x16, 0x01), "handshake record carrying a ClientHello");
        let record = u16::from_be_bytes([h[3], h[4]]) as usize;
        let hello = u32::from_be_bytes([0, h[6], h[7], h[8]]) as usize;
        assert_eq!(record, hello + 4, "record length = ClientHello + its 4-byte header");
        assert!(h.len() < 5 + record, "a prefix: the server must wait for more");
    }

    #[test]
    fn summary_counts_each_end() {
        let ends = [
            (StallEnd::Closed(Duration::from_millis(10_002)), 0),
            (StallEnd::Reset(Duration::from_millis(10_010)), 7),
            (StallEnd::StillOpen, 0),
            (StallEnd::NotOpened, 0),
        ];
        let s = StallSummary::of(&ends);
        assert_eq!((s.opened, s.not_opened, s.ended(), s.still_open, s.bytes_from_engine), (3, 1, 2, 1, 7));
        assert_eq!((s.closed_after_min_s, s.closed_after_max_s), (Some(10.002), Some(10.01)));
        assert_eq!(StallSummary::of(&[]).closed_after_min_s, None);
    }
}
