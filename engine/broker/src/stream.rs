//! The byte streams a client arrives on. Plain TCP is handed to the io thread's own
//! backend (io_uring or epoll); TLS and WebSocket connections arrive as tokio streams
//! that stay registered with the listener's reactor, so the io thread drives them
//! through tokio's traits (io_uring is for the plain TCP hot path).

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// What a wrapped (TLS, WebSocket) client connection is.
pub(crate) trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> ClientIo for T {}

/// A connection on its way from the listener to its node.
pub(crate) enum ClientStream {
    /// The io thread's backend takes the socket over.
    Tcp(std::net::TcpStream),
    /// TLS, WebSocket or both: read and written through tokio's traits.
    Wrapped(Box<dyn ClientIo>),
}

/// A stream the handshake ran on, turned into what a node takes.
pub(crate) trait IntoClientStream: ClientIo + Sized {
    fn into_client_stream(self) -> std::io::Result<ClientStream> {
        Ok(ClientStream::Wrapped(Box::new(self)))
    }
}

impl IntoClientStream for TcpStream {
    fn into_client_stream(self) -> std::io::Result<ClientStream> {
        // Deregistered from the listener's reactor: the node registers it with its own.
        self.into_std().map(ClientStream::Tcp)
    }
}

impl<S: ClientIo> IntoClientStream for tokio_rustls::server::TlsStream<S> {}
impl<S: ClientIo> IntoClientStream for crate::websocket::WsIo<S> {}
