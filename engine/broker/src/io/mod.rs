//! Socket I/O for client connections, behind two small traits so the backend can be
//! swapped: io_uring through tokio-uring, or tokio's epoll reactor.
//!
//! Each io thread is one node (see `node`): a single-threaded runtime that reads the
//! router's log and runs the connections whose client ids hash to it, so a
//! connection's tasks and its session need no locks.
//!
//! Both traits take and return owned buffers (io_uring's model): a read or write that is
//! cancelled mid-flight would lose its buffer, so callers never race them in `select!`
//! against anything but the end of the connection.

mod epoll;
mod uring;
mod wrapped;

use std::io;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;

use alicia_config::IoBackend;
use alicia_supervisor::{panic_message, Component};
use bytes::{Bytes, BytesMut};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::bus::Message;
use crate::context::Context;
use crate::node::Node;
use crate::router::NodeLink;
use crate::session::Handoff;

/// What a node's thread is asked to do.
pub(crate) enum NodeCommand {
    /// Run a connection whose client id hashes to this node.
    Connect(Handoff),
    /// Deliver a message to this node's sessions without the router (an engine alert
    /// when the router is gone).
    Deliver(Message),
    /// `[security]` was reloaded: rebuild every session's ACL rules.
    RulesChanged,
    /// Die as a bug would (tests of the supervision only).
    #[cfg(feature = "fault-injection")]
    Fail,
}

/// Reading half of a client socket.
pub(crate) trait SocketReader: 'static {
    /// Appends what arrives to `buf`. When `buf` has no spare capacity, `want` bytes are
    /// reserved first (on epoll only once the socket is readable, so an idle
    /// connection holds no buffer). 0 means end of stream.
    async fn read(&mut self, buf: BytesMut, want: usize) -> (io::Result<usize>, BytesMut);
}

/// Writing half of a client socket.
pub(crate) trait SocketWriter: 'static {
    /// Writes all of `buf` (a shared buffer: a large payload is written from where it
    /// arrived).
    async fn write_all(&mut self, buf: Bytes) -> io::Result<()>;
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

/// What an io thread needs to become a node.
pub(crate) struct NodeSeed {
    pub id: u16,
    pub ctx: Arc<Context>,
    pub link: NodeLink,
    /// Reports the thread's death to the supervisor.
    pub component: Component,
    /// Reports the router's: a node sees it when its link closes.
    pub router: Component,
}

/// The io threads.
pub(crate) struct IoWorkers {
    inboxes: Vec<flume::Sender<NodeCommand>>,
    threads: Vec<JoinHandle<()>>,
}

impl IoWorkers {
    pub(crate) fn start(
        backend: ActiveBackend,
        seeds: Vec<NodeSeed>,
        stop: CancellationToken,
    ) -> Result<IoWorkers, IoError> {
        let count = seeds.len();
        let mut inboxes = Vec::with_capacity(count);
        let mut threads = Vec::with_capacity(count);
        for seed in seeds {
            let (tx, rx) = flume::unbounded::<NodeCommand>();
            let stop = stop.clone();
            let handle = std::thread::Builder::new()
                .name(format!("mqtt-io-{}", seed.id))
                .spawn(move || run_node(backend, seed, rx, stop))
                .map_err(IoError::Spawn)?;
            inboxes.push(tx);
            threads.push(handle);
        }
        info!(backend = backend.as_str(), threads = count, "mqtt io workers started");
        Ok(IoWorkers { inboxes, threads })
    }

    pub(crate) fn len(&self) -> usize {
        self.inboxes.len()
    }

    /// Hands a connection to its node.
    pub(crate) fn dispatch(&self, node: usize, handoff: Handoff) {
        // A node only goes away at shutdown (or when it died, which ends the process);
        // the socket is then simply closed.
        let _ = self.inboxes[node].send(NodeCommand::Connect(handoff));
    }

    /// The command senders, for deliveries that must not need the router.
    pub(crate) fn inboxes(&self) -> Vec<flume::Sender<NodeCommand>> {
        self.inboxes.clone()
    }

    /// Closes the inboxes and waits for every node (and so every connection) to finish.
    pub(crate) fn join(self) {
        drop(self.inboxes);
        for t in self.threads {
            let _ = t.join();
        }
    }
}

/// An io thread's whole life; its death (a panic anywhere outside one connection's
/// task, or its reading loop ending before shutdown) is reported, not swallowed.
fn run_node(backend: ActiveBackend, seed: NodeSeed, inbox: flume::Receiver<NodeCommand>, stop: CancellationToken) {
    let component = seed.component.clone();
    let ran = std::panic::catch_unwind(AssertUnwindSafe(|| match backend {
        ActiveBackend::Uring => uring::run_node(seed, inbox, stop.clone()),
        ActiveBackend::Epoll => epoll::run_node(seed, inbox, stop.clone()),
    }));
    let cause = match ran {
        Err(panic) => panic_message(panic.as_ref()),
        Ok(Err(cause)) => cause,
        Ok(Ok(())) => return,
    };
    if !stop.is_cancelled() {
        component.down(cause);
    }
}

/// The loop each node runs inside its runtime: read the log, start a connection per
/// handoff; at shutdown, wait for the connections to close.
async fn serve<F, Fut>(
    seed: NodeSeed,
    inbox: flume::Receiver<NodeCommand>,
    stop: CancellationToken,
    mut connect: F,
) -> Result<(), String>
where
    F: FnMut(Rc<Node>, Handoff) -> Option<Fut>,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let NodeSeed { id, ctx, link, component, router } = seed;
    let node = Rc::new(Node::new(id, ctx, link.tx));
    crate::session::attach::restore(&node, node.ctx.boot.take(usize::from(id)));
    let mut reading = Some(tokio::task::spawn_local(node.clone().run(link.rx)));
    let sweeping = tokio::task::spawn_local(node.clone().sweep_keep_alives());
    let result = loop {
        tokio::select! {
            command = inbox.recv_async() => match command {
                Ok(NodeCommand::Connect(handoff)) => {
                    if let Some(connection) = connect(node.clone(), handoff) {
                        tokio::task::spawn_local(connection);
                    }
                }
                Ok(NodeCommand::Deliver(message)) => {
                    node.route(message);
                    node.flush();
                }
                Ok(NodeCommand::RulesChanged) => node.rebuild_rules(),
                #[cfg(feature = "fault-injection")]
                Ok(NodeCommand::Fail) => panic!("fault injected into node {id}"),
                Err(_) => break Ok(()),
            },
            _ = stop.cancelled() => break Ok(()),
            ended = async { reading.as_mut().expect("guarded").await }, if reading.is_some() => {
                reading = None;
                let cause = match ended {
                    Ok(Ok(())) => break Ok(()),
                    Ok(Err(cause)) => {
                        router.down(cause.clone());
                        cause
                    }
                    Err(e) if e.is_panic() => panic_message(e.into_panic().as_ref()),
                    Err(_) => format!("node {id} stopped reading the router's log"),
                };
                // Its clients stay connected: an alert about this can still reach them
                // directly before the engine exits.
                component.down(cause);
            }
        }
    };
    sweeping.abort();
    node.close_all().await;
    result
}
