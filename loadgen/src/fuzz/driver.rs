//! Runs one case over a real socket: connect, the steps in order while a reader drains
//! whatever the engine answers, then the ending (FIN, RST or half-close). Every wait is
//! bounded, so whatever the engine does a case gives its worker back within seconds.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};
use tokio::time::timeout;

use super::case::{Case, Ending, Step};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// An engine may stop reading a client on purpose (a large publish waiting for room in
/// the byte budget); past this the case gives up on the rest of its bytes.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// After a plain close, how long the engine has to answer or close first.
const SETTLE: Duration = Duration::from_millis(25);
/// After a half-close, how long the engine has to close its side.
const HALF_CLOSE_WAIT: Duration = Duration::from_secs(1);
/// Small pieces are for partial reads, not for a million syscalls.
const MAX_PIECES: usize = 4_000;

/// What happened to one case's connection.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Outcome {
    pub connected: bool,
    /// The engine ended the connection (FIN or RST) before the case did.
    pub closed_by_engine: bool,
    /// A write failed: the engine had already closed or reset.
    pub write_failed: bool,
    /// A write made no progress for `WRITE_TIMEOUT`.
    pub write_stalled: bool,
    pub received: usize,
}

/// Reads until EOF, an error or `stop`; returns the bytes read, whether the engine
/// ended the stream, and the read half (the socket closes when both halves are back).
async fn drain(mut read: OwnedReadHalf, mut stop: watch::Receiver<bool>) -> (usize, bool, OwnedReadHalf) {
    let mut buf = vec![0u8; 16 * 1024];
    let mut received = 0;
    loop {
        tokio::select! {
            r = read.read(&mut buf) => match r {
                Ok(0) | Err(_) => return (received, true, read),
                Ok(n) => received += n,
            },
            _ = stop.changed() => return (received, false, read),
        }
    }
}

async fn write(write: &mut OwnedWriteHalf, bytes: &[u8], chunk: Option<usize>) -> std::io::Result<()> {
    match chunk {
        None => write.write_all(bytes).await,
        Some(c) => {
            let c = c.max(bytes.len() / MAX_PIECES).max(1);
            for piece in bytes.chunks(c) {
                write.write_all(piece).await?;
                tokio::task::yield_now().await;
            }
            Ok(())
        }
    }
}

/// Connections held open in the background at once; a case that finds none free ends
/// with a plain close instead (the engine's per-address connection limit is far above).
pub(crate) const MAX_HELD: usize = 16;

pub(crate) async fn run(case: &Case, addr: SocketAddr, held: &std::sync::Arc<Semaphore>) -> Outcome {
    let mut outcome = Outcome::default();
    let Ok(Ok(stream)) = timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await else {
        return outcome;
    };
    outcome.connected = true;
    let _ = stream.set_nodelay(true);
    if case.ending == Ending::Reset {
        let _ = stream.set_zero_linger();
    }
    let (read, mut write_half) = stream.into_split();
    let (stop, stopped) = watch::channel(false);
    let mut reader = tokio::spawn(drain(read, stopped));
    for step in &case.steps {
        match step {
            Step::Send { bytes, chunk } => match timeout(WRITE_TIMEOUT, write(&mut write_half, bytes, *chunk)).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => {
                    outcome.write_failed = true;
                    break;
                }
                Err(_) => {
                    outcome.write_stalled = true;
                    break;
                }
            },
            Step::Pause(d) => tokio::time::sleep(*d).await,
            Step::StopReading => {
                let _ = stop.send(true);
            }
        }
    }
    let wait = match case.ending {
        Ending::Close => SETTLE,
        Ending::HalfClose => {
            let _ = timeout(WRITE_TIMEOUT, write_half.shutdown()).await;
            HALF_CLOSE_WAIT
        }
        Ending::Reset => Duration::ZERO,
        Ending::Hold(hold) => {
            if let Ok(permit) = held.clone().try_acquire_owned() {
                let _ = stop.send(true);
                tokio::spawn(async move {
                    // Not reading: what the engine writes fills the socket buffers.
                    let drained = reader.await;
                    tokio::time::sleep(hold).await;
                    drop((drained, write_half, permit));
                });
                return outcome;
            }
            SETTLE
        }
    };
    let drained = match timeout(wait, &mut reader).await {
        Ok(result) => result.ok(),
        Err(_) => {
            let _ = stop.send(true);
            reader.await.ok()
        }
    };
    if let Some((received, ended, read)) = drained {
        outcome.received = received;
        outcome.closed_by_engine = ended;
        // Closed whole, not half by half: a write half dropped alone sends a FIN first,
        // and a reset must be the only thing the engine sees.
        if let Ok(stream) = read.reunite(write_half) {
            drop(stream);
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzz::case::{Family, Target};
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn a_peer_that_closes_is_noticed_and_a_reset_reaches_it() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A peer that reads four bytes, answers, and closes.
        let peer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut four = [0u8; 4];
            s.read_exact(&mut four).await.unwrap();
            s.write_all(b"ok").await.unwrap();
            drop(s);
            let (mut s, _) = listener.accept().await.unwrap();
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).await
        });
        let mut case = Case::new(0, Family::Packets, Target::Mqtt);
        case.send("four", vec![1, 2, 3, 4]);
        case.ending = Ending::HalfClose;
        let held = std::sync::Arc::new(Semaphore::new(MAX_HELD));
        let out = run(&case, addr, &held).await;
        assert!(out.connected && out.closed_by_engine, "{out:?}");
        assert_eq!(out.received, 2);

        let mut case = Case::new(1, Family::Packets, Target::Mqtt);
        case.steps.push(Step::Send { bytes: vec![9; 10], chunk: Some(3) });
        case.ending = Ending::Reset;
        let out = run(&case, addr, &held).await;
        assert!(out.connected && !out.closed_by_engine, "{out:?}");
        let read = peer.await.unwrap();
        assert!(read.is_err(), "the peer sees a reset, not an orderly end: {read:?}");
    }
}
