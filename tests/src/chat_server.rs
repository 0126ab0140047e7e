//! A small OpenAI-compatible chat server on an ephemeral port, for the engine's chat
//! fallback to talk to: `POST /v1/chat/completions` read as a real server reads it,
//! answered with the real shapes — server-sent events (`chat.completion.chunk`, chunked
//! transfer, `data: [DONE]`) when the request says `"stream": true`, else one
//! `chat.completion`. Its answer to a question is two sentences, the second naming how
//! many exchanges of context came with it:
//! `"You asked: {question}. {n} before."`. It can hold the second sentence back until
//! the test lets it go, to show the first one is used before the answer is whole.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use serde_json::{json, Value};

use crate::PATIENCE;

/// The running server. It serves until the test process ends.
pub struct ChatServer {
    url: String,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Bodies of the requests, in order.
    requests: Vec<Value>,
    /// Second sentences wait for `release` while set.
    holding: bool,
    released: bool,
    /// Streams that have sent their last byte.
    finished: usize,
}

impl ChatServer {
    /// A server that answers at once.
    pub fn start() -> ChatServer {
        ChatServer::with_hold(false)
    }

    /// A server whose streamed answers stop after their first sentence until
    /// [`release`](Self::release).
    pub fn holding_back() -> ChatServer {
        ChatServer::with_hold(true)
    }

    fn with_hold(holding: bool) -> ChatServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        let shared = Arc::new(Shared::default());
        shared.state.lock().unwrap().holding = holding;
        let server = Arc::clone(&shared);
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&server);
                thread::spawn(move || serve(stream, &shared));
            }
        });
        ChatServer { url, shared }
    }

    /// `http://127.0.0.1:PORT/v1`, as `[voice.chat] url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The request bodies so far.
    pub fn requests(&self) -> Vec<Value> {
        self.shared.state.lock().unwrap().requests.clone()
    }

    /// Streams that have ended.
    pub fn finished(&self) -> usize {
        self.shared.state.lock().unwrap().finished
    }

    /// Lets held-back answers go on.
    pub fn release(&self) {
        self.shared.state.lock().unwrap().released = true;
        self.shared.changed.notify_all();
    }
}

fn serve(mut stream: TcpStream, shared: &Shared) {
    let Some(body) = read_request(&mut stream) else { return };
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let question = messages
        .last()
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .trim_end_matches(['.', '?', '!'])
        .to_string();
    let before = messages.iter().filter(|m| m["role"] == "user").count().saturating_sub(1);
    let streamed = body["stream"] == true;
    shared.state.lock().unwrap().requests.push(body);
    let first = format!("You asked: {question}.");
    let second = format!(" {before} before.");
    if !streamed {
        let answer = json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1_700_000_000, "model": "test-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": first + &second}, "finish_reason": "stop"}],
        })
        .to_string();
        let head =
            format!("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n", answer.len());
        let _ = stream.write_all((head + &answer).as_bytes());
        return;
    }
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    // Word by word, as a model writes; the first sentence's end shows once the next
    // word starts.
    let mut words: Vec<String> = first.split_inclusive(' ').map(str::to_string).collect();
    let rest: Vec<String> = second.split_inclusive(' ').map(str::to_string).collect();
    words.push(rest[0].clone());
    let ok = words.iter().all(|word| send_event(&mut stream, &delta(word)));
    {
        let state = shared.state.lock().unwrap();
        let (_state, _timeout) =
            shared.changed.wait_timeout_while(state, PATIENCE, |state| state.holding && !state.released).unwrap();
    }
    let ok = ok && rest[1..].iter().all(|word| send_event(&mut stream, &delta(word)));
    let ok = ok && send_event(&mut stream, "[DONE]") && stream.write_all(b"0\r\n\r\n").is_ok();
    if ok {
        shared.state.lock().unwrap().finished += 1;
    }
}

fn delta(word: &str) -> String {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "test-model",
        "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": null}],
    })
    .to_string()
}

/// One event as one chunk.
fn send_event(stream: &mut TcpStream, data: &str) -> bool {
    let event = format!("data: {data}\n\n");
    stream.write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes()).and_then(|()| stream.flush()).is_ok()
}

/// The JSON body of one POST with a Content-Length, or `None` if the client left.
fn read_request(stream: &mut TcpStream) -> Option<Value> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).ok().filter(|n| *n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    assert!(head.starts_with("POST /v1/chat/completions HTTP/1.1\r\n"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("content-length")))
        .map(|(_, v)| v.trim().parse().unwrap())?;
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).ok().filter(|n| *n > 0)?;
        body.extend_from_slice(&chunk[..n]);
    }
    serde_json::from_slice(&body).ok()
}
