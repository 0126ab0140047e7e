//! `GET /store/backup`: a consistent copy of the durable store, streamed as it is read.
//!
//! The snapshot is written on a blocking thread into a bounded channel of 64 KiB
//! chunks, so a slow reader slows the writer instead of filling memory. A failure half
//! way ends the response early; the file `alicia backup` writes is then refused by its
//! own checksum, never taken for a whole backup.

use std::io::Write;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::sync::mpsc;

use crate::AppState;

const CHUNK: usize = 64 * 1024;

/// A `Write` that hands full chunks to the response body.
struct ChunkSender {
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl ChunkSender {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx.blocking_send(Ok(chunk)).map_err(|_| std::io::Error::other("the client went away"))
    }
}

impl Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

pub(crate) async fn store_backup(State(state): State<AppState>) -> Response {
    let Some(source) = state.backup.clone() else {
        let body = r#"{"error":"the engine keeps no store ([storage] dir is not set)"}"#;
        return (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    };
    let (tx, mut rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut out = ChunkSender { tx: tx.clone(), buf: Vec::with_capacity(CHUNK) };
        let result = source.write_backup(&mut out).and_then(|()| out.flush().map_err(|e| e.to_string()));
        if let Err(e) = result {
            tracing::error!(error = %e, "store backup failed");
            let _ = tx.blocking_send(Err(std::io::Error::other(e)));
        }
    });
    let stream = futures::stream::poll_fn(move |cx| rx.poll_recv(cx));
    ([(header::CONTENT_TYPE, "application/octet-stream")], Body::from_stream(stream)).into_response()
}
