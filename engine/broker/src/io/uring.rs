//! io_uring backend (tokio-uring): reads land in the buffer's spare capacity directly,
//! and writes go from the shared buffer they are given.

use std::io;
use std::net::Shutdown;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use tokio_uring::buf::BoundedBuf;
use tokio_uring::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::NodeCommand;
use super::{serve, NodeSeed, SocketReader, SocketWriter};
use crate::session::{attach, Handoff};
use crate::stream::ClientStream;
use futures::future::Either;

/// Succeeds when this process may create an io_uring instance.
/// Runs on a thread of its own: the probe builds (and drops) a runtime, which tokio
/// forbids inside another runtime's context.
pub(super) fn probe() -> io::Result<()> {
    std::thread::spawn(|| tokio_uring::Runtime::new(&tokio_uring::builder()).map(drop))
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("io_uring probe panicked")))
}

pub(super) fn run_node(
    seed: NodeSeed,
    inbox: flume::Receiver<NodeCommand>,
    stop: CancellationToken,
) -> Result<(), String> {
    tokio_uring::start(serve(seed, inbox, stop, |node, Handoff { stream, client }| match stream {
        ClientStream::Tcp(stream) => {
            let _ = stream.set_nodelay(true);
            // io_uring waits for readiness itself; a non-blocking fd can surface EAGAIN.
            let _ = stream.set_nonblocking(false);
            let stream = Rc::new(TcpStream::from_std(stream));
            Some(Either::Left(attach(node, client, UringReader(stream.clone()), UringWriter(stream))))
        }
        ClientStream::Wrapped(stream) => {
            let (reader, writer) = super::wrapped::split(stream);
            Some(Either::Right(attach(node, client, reader, writer)))
        }
    }))
}

pub(crate) struct UringReader(Rc<TcpStream>);
pub(crate) struct UringWriter(Rc<TcpStream>);

impl SocketReader for UringReader {
    async fn read(&mut self, mut buf: BytesMut, want: usize) -> (io::Result<usize>, BytesMut) {
        if buf.capacity() == buf.len() {
            buf.reserve(want);
        }
        let filled = buf.len();
        // Read into the spare capacity only, after what is already buffered.
        let (result, slice) = self.0.read(buf.slice(filled..)).await;
        (result, slice.into_inner())
    }
}

impl SocketWriter for UringWriter {
    async fn write_all(&mut self, buf: Bytes) -> io::Result<()> {
        self.0.write_all(buf).await.0
    }

    fn shutdown(&mut self) {
        let _ = self.0.shutdown(Shutdown::Write);
    }
}
