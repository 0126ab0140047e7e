//! TLS and WebSocket connections on either backend: tokio streams, read and written
//! through tokio's traits on the io thread that hosts the session.

use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};

use super::{SocketReader, SocketWriter};
use crate::stream::ClientIo;

pub(crate) struct WrappedReader(ReadHalf<Box<dyn ClientIo>>);
pub(crate) struct WrappedWriter(Option<WriteHalf<Box<dyn ClientIo>>>);

pub(crate) fn split(stream: Box<dyn ClientIo>) -> (WrappedReader, WrappedWriter) {
    let (read, write) = tokio::io::split(stream);
    (WrappedReader(read), WrappedWriter(Some(write)))
}

impl SocketReader for WrappedReader {
    async fn read(&mut self, mut buf: BytesMut, want: usize) -> (io::Result<usize>, BytesMut) {
        // A TLS record or WebSocket message is decoded into the buffer as a whole, so
        // it is reserved up front (the layers below hold their own buffers anyway).
        if buf.capacity() == buf.len() {
            buf.reserve(want);
        }
        let result = self.0.read_buf(&mut buf).await;
        (result, buf)
    }
}

impl SocketWriter for WrappedWriter {
    async fn write_all(&mut self, buf: Bytes) -> io::Result<()> {
        let Some(w) = self.0.as_mut() else { return Err(io::ErrorKind::NotConnected.into()) };
        w.write_all(&buf).await?;
        // TLS records and WebSocket messages wait in their layer until flushed.
        w.flush().await
    }

    fn shutdown(&mut self) {
        // TLS close_notify and the WebSocket close frame need writes of their own; the
        // node's local task set runs them after the connection's task is done.
        if let Some(mut w) = self.0.take() {
            tokio::task::spawn_local(async move {
                let _ = tokio::time::timeout(std::time::Duration::from_secs(1), w.shutdown()).await;
            });
        }
    }
}
