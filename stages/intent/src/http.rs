//! A small blocking HTTP/1.1 client over `std::net::TcpStream`: one POST of JSON, its
//! answer's body handed on as it arrives (a streamed chat answer is spoken before it
//! ends), one deadline for all of it.
//!
//! Plain `http://` only, on purpose: the chat model is a local server (llama.cpp,
//! Ollama, vLLM) or a proxy on the LAN that holds the cloud credentials and speaks TLS
//! to the outside. That keeps a TLS stack out of the engine for an off-by-default
//! fallback.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::error::ChatError;

/// Largest answer read; a chat completion of a few sentences is a few KiB.
const MAX_RESPONSE_BYTES: usize = 1 << 20;
const MAX_HEADER_BYTES: usize = 64 << 10;

/// `http://host[:port][/path]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HttpUrl {
    pub(crate) host: String,
    pub(crate) port: u16,
    /// Starts with `/`.
    pub(crate) path: String,
}

impl HttpUrl {
    pub(crate) fn parse(url: &str) -> Result<Self, ChatError> {
        let bad = |reason: &str| ChatError::Url { url: url.to_string(), reason: reason.to_string() };
        let rest = match url.split_once("://") {
            Some(("http", rest)) => rest,
            Some(("https", _)) => {
                return Err(bad("https is not supported: point it at a local server or a plain-http proxy"));
            }
            _ => return Err(bad("must start with http://")),
        };
        let (authority, path) = rest.find('/').map_or((rest, "/"), |slash| (&rest[..slash], &rest[slash..]));
        if authority.contains('@') {
            return Err(bad("credentials in the url are not supported: use api_key"));
        }
        let port = |text: &str| text.parse::<u16>().map_err(|_| bad("the port is not a number"));
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or_else(|| bad("unclosed [ in the host"))?;
            match after.strip_prefix(':') {
                Some(number) => (host, port(number)?),
                None if after.is_empty() => (host, 80),
                None => return Err(bad("junk after the host")),
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, number)) => (host, port(number)?),
                None => (authority, 80),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Self { host: host.to_string(), port, path: path.to_string() })
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// What the server said before its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Head {
    pub(crate) status: u16,
    /// `Content-Type: text/event-stream`: the body is server-sent events.
    pub(crate) event_stream: bool,
}

/// Takes the answer's body, piece by piece as it arrives, with the head it came under.
pub(crate) type BodyReader<'a> = dyn FnMut(Head, &[u8]) -> Result<(), ChatError> + 'a;

/// POSTs `body` as JSON to `url` with extra `headers`, and hands the answer's body to
/// `on_body` piece by piece as it arrives (decoded from chunked transfer when it is), so
/// a streamed answer can be used before it ends. Returns the head once the body has
/// ended. The whole exchange, connect included, ends by `end`; `timeout` is the budget
/// that deadline stands for, named in a timeout error.
pub(crate) fn post_json(
    url: &HttpUrl,
    headers: &[(&str, &str)],
    body: &[u8],
    end: Instant,
    timeout: Duration,
    on_body: &mut BodyReader<'_>,
) -> Result<Head, ChatError> {
    let deadline = Deadline { end, timeout };
    let mut stream = connect(url, &deadline)?;
    let mut request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\nConnection: close\r\nUser-Agent: alicia-bus\r\n",
        url.path,
        url.authority(),
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.set_write_timeout(Some(deadline.remaining()?))?;
    deadline.io(stream.write_all(request.as_bytes()))?;
    deadline.io(stream.write_all(body))?;
    read_response(&mut stream, &deadline, on_body)
}

struct Deadline {
    end: Instant,
    timeout: Duration,
}

impl Deadline {
    fn remaining(&self) -> Result<Duration, ChatError> {
        match self.end.checked_duration_since(Instant::now()) {
            Some(left) if !left.is_zero() => Ok(left),
            _ => Err(ChatError::Timeout { after: self.timeout }),
        }
    }

    /// A socket timeout is the deadline passing, not a broken connection.
    fn io<T>(&self, result: std::io::Result<T>) -> Result<T, ChatError> {
        result.map_err(|err| match err.kind() {
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => ChatError::Timeout { after: self.timeout },
            _ => ChatError::Io(err),
        })
    }
}

fn connect(url: &HttpUrl, deadline: &Deadline) -> Result<TcpStream, ChatError> {
    let addr = url.authority();
    let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(|source| ChatError::Connect { addr: addr.clone(), source })?
        .collect();
    let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "the host has no address");
    for candidate in addrs {
        match TcpStream::connect_timeout(&candidate, deadline.remaining()?) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                return Ok(stream);
            }
            Err(err) if err.kind() == std::io::ErrorKind::TimedOut => {
                return Err(ChatError::Timeout { after: deadline.timeout });
            }
            Err(err) => last = err,
        }
    }
    Err(ChatError::Connect { addr, source: last })
}

/// Reads more of the answer into `buf`; `false` at the end of the stream.
fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, deadline: &Deadline) -> Result<bool, ChatError> {
    stream.set_read_timeout(Some(deadline.remaining()?))?;
    let mut chunk = [0u8; 8 << 10];
    let read = deadline.io(stream.read(&mut chunk))?;
    buf.extend_from_slice(&chunk[..read]);
    Ok(read > 0)
}

fn read_response(stream: &mut TcpStream, deadline: &Deadline, on_body: &mut BodyReader<'_>) -> Result<Head, ChatError> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buf.len() > MAX_HEADER_BYTES {
            return Err(ChatError::Protocol("headers too long".into()));
        }
        if !fill(stream, &mut buf, deadline)? {
            return Err(ChatError::Protocol("connection closed before the headers ended".into()));
        }
    };
    let head_text =
        std::str::from_utf8(&buf[..head_end]).map_err(|_| ChatError::Protocol("headers are not text".into()))?;
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = match status_line.split_whitespace().collect::<Vec<_>>().as_slice() {
        [version, code, ..] if version.starts_with("HTTP/1.") => {
            code.parse::<u16>().map_err(|_| ChatError::Protocol(format!("bad status line {status_line:?}")))?
        }
        _ => return Err(ChatError::Protocol(format!("bad status line {status_line:?}"))),
    };
    let (mut length, mut chunked, mut event_stream) = (None, false, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else { continue };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| ChatError::Protocol("bad content-length".into()))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.to_ascii_lowercase().contains("chunked");
        } else if name.eq_ignore_ascii_case("content-type") {
            event_stream = value.to_ascii_lowercase().starts_with("text/event-stream");
        }
    }
    let head = Head { status, event_stream };
    if length.is_some_and(|length| length > MAX_RESPONSE_BYTES) {
        return Err(ChatError::Protocol(format!("answer larger than {MAX_RESPONSE_BYTES} bytes")));
    }
    let mut body = Body { head, on_body, delivered: 0 };
    let mut raw = buf.split_off(head_end + 4);
    if chunked {
        let mut dechunker = Dechunker::default();
        loop {
            if dechunker.feed(&mut raw, &mut |data| body.deliver(data))? {
                return Ok(head);
            }
            // What is left is part of a size line: it cannot be this long.
            if raw.len() > MAX_HEADER_BYTES {
                return Err(ChatError::Protocol("chunk size line too long".into()));
            }
            if !fill(stream, &mut raw, deadline)? {
                return Err(ChatError::Protocol("connection closed inside a chunked body".into()));
            }
        }
    }
    match length {
        Some(length) => {
            let mut left = length;
            loop {
                let take = raw.len().min(left);
                body.deliver(&raw[..take])?;
                left -= take;
                raw.clear();
                if left == 0 {
                    return Ok(head);
                }
                if !fill(stream, &mut raw, deadline)? {
                    return Err(ChatError::Protocol("connection closed before the body ended".into()));
                }
            }
        }
        // `Connection: close` and no length: the body runs to the end of the stream.
        None => loop {
            body.deliver(&raw)?;
            raw.clear();
            if !fill(stream, &mut raw, deadline)? {
                return Ok(head);
            }
        },
    }
}

/// The body on its way to its reader, counted against [`MAX_RESPONSE_BYTES`].
struct Body<'a> {
    head: Head,
    on_body: &'a mut BodyReader<'a>,
    delivered: usize,
}

impl Body<'_> {
    fn deliver(&mut self, data: &[u8]) -> Result<(), ChatError> {
        if data.is_empty() {
            return Ok(());
        }
        self.delivered += data.len();
        if self.delivered > MAX_RESPONSE_BYTES {
            return Err(ChatError::Protocol(format!("answer larger than {MAX_RESPONSE_BYTES} bytes")));
        }
        (self.on_body)(self.head, data)
    }
}

/// Decodes a chunked body as it arrives.
#[derive(Default)]
struct Dechunker {
    /// Bytes of the current chunk's data still to come (then its CRLF).
    left_in_chunk: usize,
    /// The CRLF after a chunk's data is still to be skipped.
    crlf_due: bool,
}

impl Dechunker {
    /// Hands the whole data of `raw` to `data` and removes what it used from `raw`
    /// (an unfinished size line stays); `true` once the last chunk has come.
    fn feed(
        &mut self,
        raw: &mut Vec<u8>,
        data: &mut dyn FnMut(&[u8]) -> Result<(), ChatError>,
    ) -> Result<bool, ChatError> {
        let mut at = 0;
        let done = loop {
            if self.left_in_chunk > 0 {
                let take = (raw.len() - at).min(self.left_in_chunk);
                data(&raw[at..at + take])?;
                at += take;
                self.left_in_chunk -= take;
                if self.left_in_chunk > 0 {
                    break false;
                }
                self.crlf_due = true;
            }
            if self.crlf_due {
                if raw.len() < at + 2 {
                    break false;
                }
                at += 2;
                self.crlf_due = false;
            }
            let Some(line_end) = raw[at..].windows(2).position(|w| w == b"\r\n") else { break false };
            let size_line = std::str::from_utf8(&raw[at..at + line_end])
                .map_err(|_| ChatError::Protocol("bad chunk size".into()))?;
            let size_hex = size_line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| ChatError::Protocol(format!("bad chunk size {size_hex:?}")))?;
            at += line_end + 2;
            if size == 0 {
                break true;
            }
            self.left_in_chunk = size;
        };
        raw.drain(..at);
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let url = HttpUrl::parse("http://127.0.0.1:8081/v1").unwrap();
        assert_eq!((url.host.as_str(), url.port, url.path.as_str()), ("127.0.0.1", 8081, "/v1"));
        let url = HttpUrl::parse("http://llm.lan").unwrap();
        assert_eq!((url.port, url.path.as_str(), url.authority().as_str()), (80, "/", "llm.lan:80"));
        let url = HttpUrl::parse("http://[::1]:9000/x").unwrap();
        assert_eq!((url.host.as_str(), url.authority().as_str()), ("::1", "[::1]:9000"));
        assert_eq!(HttpUrl::parse("http://[::1]").unwrap().port, 80);
        let err = HttpUrl::parse("https://api.x.ai/v1").unwrap_err();
        assert!(err.to_string().contains("https is not supported"), "{err}");
        assert_eq!(err.error_type(), "invalid_config");
        assert!(HttpUrl::parse("127.0.0.1:8080").is_err());
        assert!(HttpUrl::parse("http://host:port/").is_err());
        assert!(HttpUrl::parse("http://user:pw@host/").is_err());
    }

    /// Feeds `raw` in pieces of `step` bytes: the decoded body, and whether it ended.
    fn dechunk(raw: &[u8], step: usize) -> Result<(Vec<u8>, bool), ChatError> {
        let (mut dechunker, mut buffered, mut body) = (Dechunker::default(), Vec::new(), Vec::new());
        for piece in raw.chunks(step) {
            buffered.extend_from_slice(piece);
            if dechunker.feed(&mut buffered, &mut |data| {
                body.extend_from_slice(data);
                Ok(())
            })? {
                return Ok((body, true));
            }
        }
        Ok((body, false))
    }

    #[test]
    fn chunked_bodies_decode_as_they_arrive() {
        let raw = b"4\r\nWiki\r\n6;x=y\r\npedia \r\n0\r\n\r\n";
        for step in [1, 2, 3, 7, raw.len()] {
            assert_eq!(dechunk(raw, step).unwrap(), (b"Wikipedia ".to_vec(), true), "step {step}");
        }
        assert_eq!(
            dechunk(b"4\r\nWi", 64).unwrap(),
            (b"Wi".to_vec(), false),
            "data is handed on before its chunk ends"
        );
        assert!(dechunk(b"zz\r\n", 64).is_err());
    }
}
