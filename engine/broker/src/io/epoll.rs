//! epoll backend: tokio's reactor on a current-thread runtime per worker.

use std::io;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::{accept_loop, serve_session, Accepted, SocketReader, SocketWriter};
use crate::session::SessionContext;

pub(super) fn run_worker(inbox: flume::Receiver<Accepted>, ctx: Arc<SessionContext>, stop: CancellationToken) {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "cannot build epoll io runtime");
            return;
        }
    };
    let local = tokio::task::LocalSet::new();
    local.block_on(
        &runtime,
        accept_loop(inbox, stop, move |accepted: Accepted| {
            let ctx = ctx.clone();
            async move {
                let _ = accepted.stream.set_nodelay(true);
                let _ = accepted.stream.set_nonblocking(true);
                let Ok(stream) = TcpStream::from_std(accepted.stream) else { return };
                let (read, write) = stream.into_split();
                serve_session(EpollReader(read), EpollWriter(Some(write)), accepted.peer, ctx).await;
            }
        }),
    );
}

pub(crate) struct EpollReader(OwnedReadHalf);
pub(crate) struct EpollWriter(Option<OwnedWriteHalf>);

impl SocketReader for EpollReader {
    async fn read(&mut self, mut buf: BytesMut) -> (io::Result<usize>, BytesMut) {
        let result = self.0.read_buf(&mut buf).await;
        (result, buf)
    }
}

impl SocketWriter for EpollWriter {
    async fn write_all(&mut self, buf: BytesMut) -> (io::Result<()>, BytesMut) {
        let result = match self.0.as_mut() {
            Some(w) => w.write_all(&buf).await,
            None => Err(io::ErrorKind::NotConnected.into()),
        };
        (result, buf)
    }

    fn shutdown(&mut self) {
        // Dropping the owned write half shuts down the write direction.
        self.0.take();
    }
}
