//! Socket I/O for client connections, behind two small traits so the backend can be
//! swapped: io_uring through tokio-uring, or tokio's epoll reactor.
//!
//! Both backends run connections on dedicated worker threads, each a single-threaded
//! runtime; a connection lives on one thread, so its tasks need not be `Send`. The
//! acceptor hands sockets to workers round-robin.
//!
//! Both traits take and return owned buffers (io_uring's model): a read or write that is
//! cancelled mid-flight would lose its buffer, so callers never race them in `select!`
//! against anything but the end of the connection.

mod epoll;
mod uring;

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use alicia_config::IoBackend;
use bytes::BytesMut;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::session::{self, SessionContext};

/// Reading half of a client socket.
pub(crate) trait SocketReader: 'static {
    /// Appends what arrives to `buf` (into its spare capacity); 0 means end of stream.
    async fn read(&mut self, buf: BytesMut) -> (io::Result<usize>, BytesMut);
}

/// Writing half of a client socket.
pub(crate) trait SocketWriter: 'static {
    /// Writes all of `buf`, returning it for reuse.
    async fn write_all(&mut self, buf: BytesMut) -> (io::Result<()>, BytesMut);
    /// Half-closes the socket so the peer sees end of stream at once.
    fn shutdown(&mut self);
}

/// The backend actually in use once `auto` has been resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActiveBackend {
    Uring,
    Epoll,
}

impl ActiveBackend {
    pub fn as_str(self) -> &'static str {
        match self {
            ActiveBackend::Uring => "uring",
            ActiveBackend::Epoll => "epoll",
        }
    }
}

/// Why the requested backend cannot run.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    #[error("io = \"uring\" was requested but io_uring is unavailable: {0}")]
    UringUnavailable(io::Error),
    #[error("cannot start io worker thread: {0}")]
    Spawn(io::Error),
}

/// Resolves `auto` by trying to set up a ring; container runtimes often forbid it.
pub(crate) fn choose_backend(requested: IoBackend) -> Result<ActiveBackend, IoError> {
    match requested {
        IoBackend::Epoll => Ok(ActiveBackend::Epoll),
        IoBackend::Uring => uring::probe().map(|()| ActiveBackend::Uring).map_err(IoError::UringUnavailable),
        IoBackend::Auto => match uring::probe() {
            Ok(()) => Ok(ActiveBackend::Uring),
            Err(e) => {
                warn!(error = %e, "io_uring unavailable, falling back to epoll");
                Ok(ActiveBackend::Epoll)
            }
        },
    }
}

/// A socket accepted by the listener, on its way to a worker.
pub(crate) struct Accepted {
    pub stream: TcpStream,
    pub peer: SocketAddr,
}

/// The pool of connection threads.
pub(crate) struct IoWorkers {
    inboxes: Vec<flume::Sender<Accepted>>,
    next: AtomicUsize,
    threads: Vec<JoinHandle<()>>,
}

impl IoWorkers {
    pub(crate) fn start(
        backend: ActiveBackend,
        threads: usize,
        ctx: Arc<SessionContext>,
        stop: CancellationToken,
    ) -> Result<IoWorkers, IoError> {
        let mut inboxes = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let (tx, rx) = flume::unbounded::<Accepted>();
            let ctx = ctx.clone();
            let stop = stop.clone();
            let handle = std::thread::Builder::new()
                .name(format!("mqtt-io-{i}"))
                .spawn(move || match backend {
                    ActiveBackend::Uring => uring::run_worker(rx, ctx, stop),
                    ActiveBackend::Epoll => epoll::run_worker(rx, ctx, stop),
                })
                .map_err(IoError::Spawn)?;
            inboxes.push(tx);
            handles.push(handle);
        }
        info!(backend = backend.as_str(), threads, "mqtt io workers started");
        Ok(IoWorkers { inboxes, next: AtomicUsize::new(0), threads: handles })
    }

    /// Hands a socket to the next worker.
    pub(crate) fn dispatch(&self, accepted: Accepted) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.inboxes.len();
        // A worker only goes away at shutdown; the socket is then simply closed.
        let _ = self.inboxes[i].send(accepted);
    }

    /// Closes the inboxes and waits for every worker (and so every session) to finish.
    pub(crate) fn join(self) {
        drop(self.inboxes);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// The loop each worker runs inside its runtime: start a session per socket until the
/// engine stops, then wait for the sessions to close.
async fn accept_loop<F, Fut>(inbox: flume::Receiver<Accepted>, stop: CancellationToken, mut serve: F)
where
    F: FnMut(Accepted) -> Fut,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let mut sessions = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = inbox.recv_async() => match accepted {
                Ok(accepted) => {
                    sessions.spawn_local(serve(accepted));
                }
                Err(_) => break,
            },
            _ = stop.cancelled() => break,
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
    while sessions.join_next().await.is_some() {}
}

pub(crate) use session::serve as serve_session;
