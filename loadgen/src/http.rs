//! A minimal HTTP/1.1 GET, for `/healthz` while a scenario attacks the engine: one request
//! per connection, `Connection: close`, the status line and the body. It connects from
//! the ordinary client's address ([`crate::ordinary::source_for`]), so the attack's
//! per-address limits are not mistaken for the health endpoint failing.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bodies beyond this are cut (a health answer is a few hundred bytes).
const MAX_RESPONSE: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: String,
    pub elapsed: Duration,
}

/// `GET path` with everything (connect, request, response) bounded by `timeout`.
pub async fn get(addr: SocketAddr, path: &str, timeout: Duration) -> Result<Response> {
    let started = Instant::now();
    let exchange = async {
        let mut stream = crate::client::tcp(addr, crate::ordinary::source_for(addr), timeout).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 || raw.len() >= MAX_RESPONSE {
                break;
            }
            raw.extend_from_slice(&chunk[..n]);
        }
        parse(&raw)
    };
    let (status, body) = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| anyhow!("no answer to GET {path} within {timeout:?}"))??;
    Ok(Response { status, body, elapsed: started.elapsed() })
}

fn parse(raw: &[u8]) -> Result<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("incomplete HTTP response ({} bytes)", raw.len());
    };
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in `{}`", head.lines().next().unwrap_or("")))?;
    Ok((status, body.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_and_body() {
        let (status, body) =
            parse(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 9\r\n\r\nrouter: x\n").unwrap();
        assert_eq!((status, body.as_str()), (503, "router: x"));
        assert!(parse(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
