//! Many requests on one connection without waiting for each answer in turn: at most
//! `window` unacknowledged, writes batched, the acknowledgements' reason codes counted,
//! and a PINGREQ at the end as a fence that proves the broker read everything.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{Notify, Semaphore};

use crate::client::{self, Client};
use crate::packet::{self, code_counts, Incoming, Version};

/// Writes are flushed once this much is buffered.
const BATCH_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Default)]
pub struct Pipelined {
    pub sent: usize,
    /// Acknowledgements received (one per request).
    pub acked: usize,
    /// Reason/return codes in the acknowledgements (SUBACK: one per filter).
    pub codes: BTreeMap<u8, usize>,
    /// The PINGRESP after the last request arrived.
    pub fenced: bool,
    /// How the connection ended early, if it did.
    pub ending: Option<String>,
    pub elapsed: Duration,
}

impl Pipelined {
    /// `20,000 sent, 20,000 acknowledged (20000 × 0x00), fence PINGRESP in 1.2 s`.
    pub fn describe(&self, version: Version) -> String {
        let codes: Vec<u8> = self.codes.iter().flat_map(|(c, n)| std::iter::repeat_n(*c, *n)).collect();
        let acks = if codes.is_empty() { String::new() } else { format!(" ({})", code_counts(version, &codes)) };
        let end = match (&self.ending, self.fenced) {
            (Some(e), _) => format!(", then {e}"),
            (None, true) => format!(", PINGRESP fence after {:.1} s", self.elapsed.as_secs_f64()),
            (None, false) => ", no PINGRESP to the fence".to_string(),
        };
        format!("{} sent, {} acknowledged{acks}{end}", self.sent, self.acked)
    }
}

#[derive(Default)]
struct Seen {
    acked: usize,
    codes: BTreeMap<u8, usize>,
    ending: Option<String>,
}

/// Sends `total` requests encoded by `encode(index, packet_id, buf)`. With `acked`, each
/// request expects one PUBACK/SUBACK/UNSUBACK and at most `window` are outstanding.
pub async fn run(
    client: Client,
    total: usize,
    window: usize,
    acked: bool,
    timeout: Duration,
    mut encode: impl FnMut(usize, u16, &mut BytesMut),
) -> Pipelined {
    let version = client.version;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let (stream, rbuf) = client.into_parts();
    let (reader, mut writer) = stream.into_split();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let window = Arc::new(Semaphore::new(window.max(1)));
    let pong = Arc::new(Notify::new());
    let ended = Arc::new(AtomicBool::new(false));
    let acks_total = Arc::new(AtomicUsize::new(0));
    let read_task = tokio::spawn(read_acks(
        reader,
        rbuf,
        version,
        seen.clone(),
        window.clone(),
        pong.clone(),
        ended.clone(),
        acks_total.clone(),
    ));

    let mut out = BytesMut::with_capacity(BATCH_BYTES * 2);
    let mut sent = 0;
    let mut write_error = None;
    for i in 0..total {
        if acked {
            let permit = match window.try_acquire() {
                Ok(p) => Ok(Ok(p)),
                Err(_) => {
                    // Waiting for acknowledgements: what is buffered must go out first.
                    if let Err(e) = writer.write_all(&out).await {
                        write_error = Some(e);
                        break;
                    }
                    out.clear();
                    tokio::time::timeout_at(deadline, window.acquire()).await.map_err(|_| ())
                }
            };
            match permit {
                Ok(Ok(p)) => p.forget(),
                _ => break, // deadline, or the reader closed the window: the connection ended
            }
        }
        encode(i, (i % 65_535 + 1) as u16, &mut out);
        sent += 1;
        if out.len() >= BATCH_BYTES {
            if let Err(e) = writer.write_all(&out).await {
                write_error = Some(e);
                break;
            }
            out.clear();
        }
        if ended.load(Ordering::Acquire) {
            break;
        }
    }
    let mut fenced = false;
    if write_error.is_none() && !ended.load(Ordering::Acquire) {
        packet::encode_pingreq(&mut out);
        match writer.write_all(&out).await {
            Ok(()) => {
                let pinged = pong.notified();
                fenced = tokio::time::timeout_at(deadline, pinged).await.is_ok() && !ended.load(Ordering::Acquire);
            }
            Err(e) => write_error = Some(e),
        }
    }
    if fenced && acked {
        // A broker may answer the PINGREQ itself before its router has acknowledged
        // everything before it: give the acknowledgements a moment to catch up.
        let _ = tokio::time::timeout(Duration::from_secs(5), async {
            while acks_total.load(Ordering::Acquire) < sent {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    }
    // What the broker said so far, before our DISCONNECT makes it close the connection.
    read_task.abort();
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    let mut bye = BytesMut::new();
    packet::encode_disconnect(&mut bye);
    let _ = writer.write_all(&bye).await;
    let ending =
        seen.ending.or_else(|| write_error.map(|e| format!("write failed: {}", client::io_end(&e).describe(version))));
    Pipelined { sent, acked: seen.acked, codes: seen.codes, fenced, ending, elapsed: started.elapsed() }
}

#[allow(clippy::too_many_arguments)] // the reader's half of the shared state, spelled out
async fn read_acks(
    mut reader: OwnedReadHalf,
    mut rbuf: BytesMut,
    version: Version,
    seen: Arc<Mutex<Seen>>,
    window: Arc<Semaphore>,
    pong: Arc<Notify>,
    ended: Arc<AtomicBool>,
    acks_total: Arc<AtomicUsize>,
) {
    let end = |why: String| {
        seen.lock().unwrap().ending = Some(why);
        ended.store(true, Ordering::Release);
        window.close();
        pong.notify_one();
    };
    loop {
        loop {
            match packet::decode(&rbuf, version) {
                Ok(Some((p, used))) => {
                    rbuf.advance(used);
                    let codes: &[u8] = match &p {
                        Incoming::PubAck { code, .. } => std::slice::from_ref(code),
                        Incoming::SubAck { codes, .. } | Incoming::UnsubAck { codes, .. } => codes,
                        Incoming::PingResp => {
                            pong.notify_one();
                            continue;
                        }
                        Incoming::Disconnect { .. } => return end(p.describe(version)),
                        _ => continue,
                    };
                    let mut s = seen.lock().unwrap();
                    s.acked += 1;
                    codes.iter().for_each(|c| *s.codes.entry(*c).or_default() += 1);
                    drop(s);
                    acks_total.fetch_add(1, Ordering::AcqRel);
                    window.add_permits(1);
                }
                Ok(None) => break,
                Err(why) => return end(format!("unparseable bytes from the broker: {why}")),
            }
        }
        rbuf.reserve(64 * 1024);
        match reader.read_buf(&mut rbuf).await {
            Ok(0) => return end("connection closed".into()),
            Ok(_) => {}
            Err(e) => return end(client::io_end(&e).describe(version)),
        }
    }
}
