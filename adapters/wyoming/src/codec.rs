//! The Wyoming wire format: one JSON header line, then `data_length` bytes of extra
//! JSON data (merged over the header's `data`), then `payload_length` bytes of
//! binary payload.
//!
//! The decoder is incremental and recovers from a bad event wherever the stream lets
//! it: a header that is not JSON costs only its line; an event whose lengths are known
//! but which is refused (too large, no `type`) has its body skipped as it arrives,
//! without buffering it. Payloads are `Bytes` slices of the read buffer.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use serde_json::{Map, Value};

use crate::error::ErrorReason;

/// The Wyoming version written in every header: the protocol revision whose events
/// and `info` fields this server follows.
pub const PROTOCOL_VERSION: &str = "1.8.0";

/// One Wyoming event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The header's `type`, e.g. `audio-chunk`.
    pub kind: String,
    /// The header's `data` with the extra data merged over it.
    pub data: Map<String, Value>,
    /// Empty when the event has none.
    pub payload: Bytes,
}

impl Event {
    pub fn new(kind: impl Into<String>) -> Self {
        Self { kind: kind.into(), data: Map::new(), payload: Bytes::new() }
    }

    /// Sets `data` from a JSON object; anything else leaves `data` empty.
    pub fn with_data(mut self, data: Value) -> Self {
        if let Value::Object(map) = data {
            self.data = map;
        }
        self
    }

    pub fn with_payload(mut self, payload: Bytes) -> Self {
        self.payload = payload;
        self
    }

    /// The header line and the extra data; the payload follows them on the wire
    /// unchanged, so audio is written from its own buffer (see [`Event::to_bytes`]).
    ///
    /// Like the reference implementation, `data` travels as extra data rather than
    /// inside the header: header lines stay short for readers with a line limit.
    pub fn encode_head(&self) -> Bytes {
        let data = if self.data.is_empty() {
            Vec::new()
        } else {
            serde_json::to_vec(&self.data).expect("a JSON map always serialises")
        };
        let mut header = Map::new();
        header.insert("type".into(), Value::from(self.kind.as_str()));
        header.insert("version".into(), Value::from(PROTOCOL_VERSION));
        if !data.is_empty() {
            header.insert("data_length".into(), Value::from(data.len()));
        }
        if !self.payload.is_empty() {
            header.insert("payload_length".into(), Value::from(self.payload.len()));
        }
        let mut head = BytesMut::with_capacity(96 + data.len());
        serde_json::to_writer((&mut head).writer(), &header).expect("a JSON map always serialises");
        head.put_u8(b'\n');
        head.extend_from_slice(&data);
        head.freeze()
    }

    /// The whole event as it goes on the wire (copies the payload; for tests and tools).
    pub fn to_bytes(&self) -> Bytes {
        let head = self.encode_head();
        let mut out = BytesMut::with_capacity(head.len() + self.payload.len());
        out.extend_from_slice(&head);
        out.extend_from_slice(&self.payload);
        out.freeze()
    }
}

/// Why bytes on the wire are not a usable event. Each leaves the decoder ready for
/// the next event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The header line is not JSON, or its fields have the wrong types.
    #[error("malformed event header: {0}")]
    MalformedHeader(String),
    /// No newline within the header limit; the rest of that line is skipped.
    #[error("event header exceeds {limit} bytes without a newline")]
    HeaderTooLong { limit: usize },
    /// The extra data after the header is not a JSON object.
    #[error("malformed `{kind}` data: {reason}")]
    MalformedData { kind: String, reason: String },
    /// `data_length` is over its limit; the body is skipped.
    #[error("`{kind}` data of {size} bytes exceeds the {limit}-byte limit")]
    DataTooLarge { kind: String, size: u64, limit: usize },
    /// `payload_length` is over its limit; the body is skipped.
    #[error("`{kind}` payload of {size} bytes exceeds the {limit}-byte limit")]
    PayloadTooLarge { kind: String, size: u64, limit: usize },
    /// The stream ended inside an event.
    #[error(
        "truncated event: the connection closed after {received} of {expected} bytes of `{kind}` data and payload"
    )]
    TruncatedBody { kind: String, received: usize, expected: usize },
    /// The stream ended inside a header line.
    #[error("truncated event: the connection closed after {received} bytes of an event header")]
    TruncatedHeader { received: usize },
}

impl DecodeError {
    pub fn reason(&self) -> ErrorReason {
        match self {
            Self::MalformedHeader(_) => ErrorReason::MalformedHeader,
            Self::HeaderTooLong { .. } => ErrorReason::HeaderTooLong,
            Self::MalformedData { .. } => ErrorReason::MalformedData,
            Self::DataTooLarge { .. } => ErrorReason::DataTooLarge,
            Self::PayloadTooLarge { .. } => ErrorReason::PayloadTooLarge,
            Self::TruncatedBody { .. } | Self::TruncatedHeader { .. } => ErrorReason::TruncatedEvent,
        }
    }
}

#[derive(Debug)]
enum State {
    Header,
    /// The header is parsed; waiting for the whole body.
    Body {
        kind: String,
        data: Map<String, Value>,
        data_len: usize,
        payload_len: usize,
    },
    /// Dropping the body of a refused event as it arrives.
    Discard {
        remaining: u64,
    },
    /// Dropping the rest of an over-long header line.
    SkipLine,
}

/// Turns a byte stream into [`Event`]s. Feed it the read buffer after every read.
#[derive(Debug)]
pub struct EventDecoder {
    max_header_bytes: usize,
    max_data_bytes: usize,
    max_payload_bytes: usize,
    state: State,
    /// Bytes of the current header line already searched for a newline, so a header
    /// arriving in many reads is scanned once.
    scanned: usize,
}

impl EventDecoder {
    /// `max_header_bytes` bounds the header line, `max_data_bytes` an event's
    /// `data_length` and `max_payload_bytes` its `payload_length`: together, what one
    /// event can make the decoder buffer.
    pub fn new(max_header_bytes: usize, max_data_bytes: usize, max_payload_bytes: usize) -> Self {
        Self { max_header_bytes, max_data_bytes, max_payload_bytes, state: State::Header, scanned: 0 }
    }

    /// Whether `buf` and the decoder hold part of an event (or of a refused one being
    /// skipped): bytes have come that the rest of an event must follow.
    pub fn in_event(&self, buf: &BytesMut) -> bool {
        !buf.is_empty() || !matches!(self.state, State::Header)
    }

    /// The next whole event in `buf`, `Ok(None)` if more bytes are needed. After an
    /// `Err` the decoder has consumed the bad event (or is skipping it): call again.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, DecodeError> {
        loop {
            match &mut self.state {
                State::Header => {
                    let Some(newline) = buf[self.scanned..].iter().position(|&b| b == b'\n') else {
                        if buf.len() > self.max_header_bytes {
                            buf.clear();
                            self.scanned = 0;
                            self.state = State::SkipLine;
                            return Err(DecodeError::HeaderTooLong { limit: self.max_header_bytes });
                        }
                        self.scanned = buf.len();
                        return Ok(None);
                    };
                    let end = self.scanned + newline;
                    self.scanned = 0;
                    let line = buf.split_to(end + 1);
                    if end > self.max_header_bytes {
                        return Err(DecodeError::HeaderTooLong { limit: self.max_header_bytes });
                    }
                    if line.iter().all(u8::is_ascii_whitespace) {
                        // A blank line carries no event; tolerate it like JSON Lines readers do.
                        continue;
                    }
                    self.state = self.parse_header(&line[..end])?;
                }
                State::Body { data_len, payload_len, .. } => {
                    let (data_len, payload_len) = (*data_len, *payload_len);
                    if buf.len() < data_len + payload_len {
                        return Ok(None);
                    }
                    let State::Body { kind, mut data, .. } = std::mem::replace(&mut self.state, State::Header) else {
                        unreachable!("matched above");
                    };
                    if data_len > 0 {
                        let extra = buf.split_to(data_len);
                        match serde_json::from_slice::<Map<String, Value>>(&extra) {
                            Ok(extra) => data.extend(extra),
                            Err(err) => {
                                buf.advance(payload_len);
                                return Err(DecodeError::MalformedData { kind, reason: err.to_string() });
                            }
                        }
                    }
                    let payload = buf.split_to(payload_len).freeze();
                    return Ok(Some(Event { kind, data, payload }));
                }
                State::Discard { remaining } => {
                    let n = buf.len().min(usize::try_from(*remaining).unwrap_or(usize::MAX));
                    buf.advance(n);
                    *remaining -= n as u64;
                    if *remaining > 0 {
                        return Ok(None);
                    }
                    self.state = State::Header;
                }
                State::SkipLine => match buf.iter().position(|&b| b == b'\n') {
                    Some(newline) => {
                        buf.advance(newline + 1);
                        self.state = State::Header;
                    }
                    None => {
                        buf.clear();
                        return Ok(None);
                    }
                },
            }
        }
    }

    /// Like [`decode`](Self::decode) once the peer has stopped sending: bytes of an
    /// incomplete event are reported as truncated and dropped.
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, DecodeError> {
        if let Some(event) = self.decode(buf)? {
            return Ok(Some(event));
        }
        let state = std::mem::replace(&mut self.state, State::Header);
        self.scanned = 0;
        let received = buf.len();
        buf.clear();
        match state {
            State::Header if received > 0 => Err(DecodeError::TruncatedHeader { received }),
            State::Body { kind, data_len, payload_len, .. } => {
                Err(DecodeError::TruncatedBody { kind, received, expected: data_len + payload_len })
            }
            // Already reported when it was refused.
            State::Header | State::Discard { .. } | State::SkipLine => Ok(None),
        }
    }

    /// How many more bytes the event being read needs (0 if unknown): a hint for
    /// sizing the read buffer so a large payload is read without regrowing it.
    pub fn bytes_wanted(&self, buf: &BytesMut) -> usize {
        match &self.state {
            State::Body { data_len, payload_len, .. } => (data_len + payload_len).saturating_sub(buf.len()),
            _ => 0,
        }
    }

    /// The state after a complete header line: its body is read next, or skipped.
    fn parse_header(&mut self, line: &[u8]) -> Result<State, DecodeError> {
        let malformed = |reason: &str| DecodeError::MalformedHeader(reason.to_owned());
        let header = match serde_json::from_slice::<Value>(line) {
            Ok(Value::Object(header)) => header,
            Ok(_) => return Err(malformed("not a JSON object")),
            Err(err) => return Err(DecodeError::MalformedHeader(err.to_string())),
        };
        let length = |field: &str| match header.get(field) {
            None | Some(Value::Null) => Ok(0),
            Some(value) => value.as_u64().ok_or_else(|| malformed(&format!("`{field}` is not a non-negative integer"))),
        };
        // Without both lengths there is no telling where the next event starts; the
        // best guess is the next line.
        let (data_len, payload_len) = (length("data_length")?, length("payload_length")?);
        let size = data_len.saturating_add(payload_len);
        // From here on the body's extent is known, so a refused event is skipped whole.
        let refuse = |decoder: &mut Self, err: DecodeError| {
            if size > 0 {
                decoder.state = State::Discard { remaining: size };
            }
            Err(err)
        };
        let kind = match header.get("type") {
            Some(Value::String(kind)) if !kind.is_empty() => kind.clone(),
            Some(_) => return refuse(self, malformed("`type` is not a non-empty string")),
            None => return refuse(self, malformed("`type` is missing")),
        };
        let data = match header.get("data") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(data)) => data.clone(),
            Some(_) => return refuse(self, malformed("`data` is not a JSON object")),
        };
        if data_len > self.max_data_bytes as u64 {
            return refuse(self, DecodeError::DataTooLarge { kind, size: data_len, limit: self.max_data_bytes });
        }
        if payload_len > self.max_payload_bytes as u64 {
            let limit = self.max_payload_bytes;
            return refuse(self, DecodeError::PayloadTooLarge { kind, size: payload_len, limit });
        }
        // Both fit in usize: each is at most its limit.
        Ok(State::Body { kind, data, data_len: data_len as usize, payload_len: payload_len as usize })
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
