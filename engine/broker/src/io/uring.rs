//! io_uring backend (tokio-uring): reads land in the buffer's spare capacity directly.

use std::io;
use std::net::Shutdown;
use std::rc::Rc;
use std::sync::Arc;

use bytes::BytesMut;
use tokio_uring::buf::BoundedBuf;
use tokio_uring::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::{accept_loop, serve_session, Accepted, SocketReader, SocketWriter};
use crate::session::SessionContext;

/// Succeeds when this process may create an io_uring instance.
/// Runs on a thread of its own: the probe builds (and drops) a runtime, which tokio
/// forbids inside another runtime's context.
pub(super) fn probe() -> io::Result<()> {
    std::thread::spawn(|| tokio_uring::Runtime::new(&tokio_uring::builder()).map(drop))
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("io_uring probe panicked")))
}

pub(super) fn run_worker(inbox: flume::Receiver<Accepted>, ctx: Arc<SessionContext>, stop: CancellationToken) {
    tokio_uring::start(accept_loop(inbox, stop, move |accepted: Accepted| {
        let ctx = ctx.clone();
        async move {
            let _ = accepted.stream.set_nodelay(true);
            // io_uring waits for readiness itself; a non-blocking fd can surface EAGAIN.
            let _ = accepted.stream.set_nonblocking(false);
            let stream = Rc::new(TcpStream::from_std(accepted.stream));
            let reader = UringReader(stream.clone());
            let writer = UringWriter(stream);
            serve_session(reader, writer, accepted.peer, ctx).await;
        }
    }));
}

pub(crate) struct UringReader(Rc<TcpStream>);
pub(crate) struct UringWriter(Rc<TcpStream>);

impl SocketReader for UringReader {
    async fn read(&mut self, buf: BytesMut) -> (io::Result<usize>, BytesMut) {
        let filled = buf.len();
        // Read into the spare capacity only, after what is already buffered.
        let (result, slice) = self.0.read(buf.slice(filled..)).await;
        (result, slice.into_inner())
    }
}

impl SocketWriter for UringWriter {
    async fn write_all(&mut self, buf: BytesMut) -> (io::Result<()>, BytesMut) {
        self.0.write_all(buf).await
    }

    fn shutdown(&mut self) {
        let _ = self.0.shutdown(Shutdown::Write);
    }
}
