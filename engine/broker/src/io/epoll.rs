//! epoll backend: tokio's reactor on a current-thread runtime per node.

use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::NodeCommand;
use super::{serve, NodeSeed, SocketReader, SocketWriter};
use crate::session::{attach, Handoff};
use crate::stream::ClientStream;
use futures::future::Either;

pub(super) fn run_node(
    seed: NodeSeed,
    inbox: flume::Receiver<NodeCommand>,
    stop: CancellationToken,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build epoll io runtime: {e}"))?;
    let local = tokio::task::LocalSet::new();
    local.block_on(
        &runtime,
        serve(seed, inbox, stop, |node, Handoff { stream, client }| match stream {
            ClientStream::Tcp(stream) => {
                let _ = stream.set_nodelay(true);
                let _ = stream.set_nonblocking(true);
                // Registered here, in the runtime, before the connection's future exists.
                let stream = TcpStream::from_std(stream).ok()?;
                let (read, write) = stream.into_split();
                Some(Either::Left(attach(node, client, EpollReader(read), EpollWriter(Some(write)))))
            }
            ClientStream::Wrapped(stream) => {
                let (reader, writer) = super::wrapped::split(stream);
                Some(Either::Right(attach(node, client, reader, writer)))
            }
        }),
    )
}

pub(crate) struct EpollReader(OwnedReadHalf);
pub(crate) struct EpollWriter(Option<OwnedWriteHalf>);

impl SocketReader for EpollReader {
    async fn read(&mut self, mut buf: BytesMut, want: usize) -> (io::Result<usize>, BytesMut) {
        loop {
            // Wait for data before holding a buffer for it.
            if let Err(e) = self.0.readable().await {
                return (Err(e), buf);
            }
            if buf.capacity() == buf.len() {
                buf.reserve(want);
            }
            match self.0.try_read_buf(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                result => return (result, buf),
            }
        }
    }
}

impl SocketWriter for EpollWriter {
    async fn write_all(&mut self, buf: Bytes) -> io::Result<()> {
        match self.0.as_mut() {
            Some(w) => w.write_all(&buf).await,
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    fn shutdown(&mut self) {
        // Dropping the owned write half shuts down the write direction.
        self.0.take();
    }
}
