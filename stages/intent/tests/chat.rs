//! The chat fallback against a small OpenAI-compatible server started here, on an
//! ephemeral port: the real `/v1/chat/completions` request and answer shapes, a plain
//! JSON completion and a `stream: true` one (server-sent events, chunked).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use alicia_home::Home;
use alicia_pipeline::{Stage, DEFAULT_OUTPUT};
use alicia_speech::{Frame, FrameMeta, Outputs, Payload, SpeechFrame};
use alicia_stage_intent::{ChatClient, ChatFallback, IntentConfig, DIDNT_CATCH_THAT};
use serde_json::{json, Value};

/// What the server saw of one request.
#[derive(Debug)]
struct Seen {
    request_line: String,
    authorization: Option<String>,
    body: Value,
}

/// How the server answers.
#[derive(Clone, Copy)]
enum Behaviour {
    /// A chat completion; the content names the question and the history length.
    Answer { chunked: bool },
    /// 500 with an OpenAI error object.
    Fail,
    /// Reads the request and never answers.
    Hang,
}

/// Serves `behaviour` to every connection until the test ends; requests go to the
/// returned channel.
fn server(behaviour: Behaviour) -> (String, mpsc::Receiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (seen_tx, seen_rx) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let seen_tx = seen_tx.clone();
            thread::spawn(move || serve(stream, behaviour, &seen_tx));
        }
    });
    (url, seen_rx)
}

fn serve(mut stream: TcpStream, behaviour: Behaviour, seen: &mpsc::Sender<Seen>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "client closed before its headers ended");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
    let header = |name: &str| {
        head.lines().skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim().to_string())
        })
    };
    let length: usize = header("content-length").expect("a content-length").parse().unwrap();
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).unwrap();
        body.extend_from_slice(&chunk[..n]);
    }
    let body: Value = serde_json::from_slice(&body).unwrap();
    let messages = body["messages"].as_array().unwrap().clone();
    let _ = seen.send(Seen {
        request_line: head.lines().next().unwrap().to_string(),
        authorization: header("authorization"),
        body,
    });

    let (status, answer) = match behaviour {
        Behaviour::Hang => {
            thread::sleep(Duration::from_secs(5));
            return;
        }
        Behaviour::Fail => (
            "500 Internal Server Error",
            json!({"error": {"message": "model overloaded", "type": "server_error", "code": null}}),
        ),
        Behaviour::Answer { .. } => {
            let question = messages.last().unwrap()["content"].as_str().unwrap();
            let earlier = messages.iter().filter(|m| m["role"] == "user").count() - 1;
            (
                "200 OK",
                json!({
                    "id": "chatcmpl-123",
                    "object": "chat.completion",
                    "created": 1_700_000_000,
                    "model": "test-model",
                    "choices": [{
                        "index": 0,
                        "message": {"role": "assistant", "content": format!("You asked: {question}\n({earlier} before.)")},
                        "logprobs": null,
                        "finish_reason": "stop"
                    }],
                    "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}
                }),
            )
        }
    };
    let payload = answer.to_string();
    let response = if matches!(behaviour, Behaviour::Answer { chunked: true }) {
        let (a, b) = payload.split_at(payload.len() / 2);
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
            a.len(),
            b.len()
        )
    } else {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{payload}",
            payload.len()
        )
    };
    let _ = stream.write_all(response.as_bytes());
}

fn fallback(url: &str) -> ChatFallback {
    ChatFallback {
        api_key: Some("test-key".into()),
        personality: "You are Alicia. Be brief.".into(),
        timeout_ms: 2_000,
        max_history: 2,
        ..ChatFallback::new(url, "test-model")
    }
}

fn home() -> Home {
    Home::from_toml(include_str!("../../../bus-config/home.toml")).unwrap()
}

#[test]
fn what_the_matcher_does_not_know_goes_to_the_chat_model() {
    let (url, seen) = server(Behaviour::Answer { chunked: false });
    let config = IntentConfig { chat: Some(fallback(&url)), ..IntentConfig::default() };
    let mut stage = config.build(&home()).unwrap();
    let mut out = Outputs::detached(&[DEFAULT_OUTPUT]);

    let frame = Frame::text(FrameMeta::new("s1", "kitchen", 0), "What's the weather like?");
    stage.process(frame, &mut out).unwrap();
    let pushed = out.take_pushed();
    assert_eq!(pushed.len(), 1, "a reply and no command");
    assert!(matches!(&pushed[0].1.payload, Payload::Text(t) if t == "You asked: What's the weather like? (0 before.)"));

    let request = seen.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(request.request_line, "POST /v1/chat/completions HTTP/1.1");
    assert_eq!(request.authorization.as_deref(), Some("Bearer test-key"));
    assert_eq!(request.body["model"], "test-model");
    assert_eq!(request.body["stream"], true, "asks for a stream; a JSON body is taken too");
    assert_eq!(
        request.body["messages"],
        json!([
            {"role": "system", "content": "You are Alicia. Be brief."},
            {"role": "user", "content": "What's the weather like?"}
        ])
    );

    // A matched intent never reaches the model.
    stage.process(Frame::text(FrameMeta::new("s1", "kitchen", 1), "turn on the lights"), &mut out).unwrap();
    assert_eq!(out.take_pushed().len(), 2);
    assert!(seen.recv_timeout(Duration::from_millis(200)).is_err());
}

#[test]
fn each_session_keeps_its_own_bounded_history() {
    let (url, seen) = server(Behaviour::Answer { chunked: true });
    let client = ChatClient::new(fallback(&url)).unwrap();
    for n in 0..3 {
        let answer = client.ask("s1", &format!("question {n}")).unwrap();
        assert_eq!(answer, format!("You asked: question {n} ({} before.)", n.min(2)));
    }
    assert_eq!(client.history_len("s1"), 2);
    let requests: Vec<Seen> = (0..3).map(|_| seen.recv_timeout(Duration::from_secs(5)).unwrap()).collect();
    let third = &requests[2];
    let roles: Vec<&str> =
        third.body["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user", "assistant", "user"]);
    assert_eq!(third.body["messages"][1]["content"], "question 0");
    assert_eq!(third.body["messages"][2]["content"], "You asked: question 0 (0 before.)");

    // Another session starts fresh; a forgotten one too.
    assert_eq!(client.ask("s2", "hello").unwrap(), "You asked: hello (0 before.)");
    client.forget("s1");
    assert_eq!(client.ask("s1", "again").unwrap(), "You asked: again (0 before.)");
}

#[test]
fn a_silent_server_times_out_and_the_user_still_gets_an_answer() {
    let (url, _seen) = server(Behaviour::Hang);
    let config =
        IntentConfig { chat: Some(ChatFallback { timeout_ms: 300, ..fallback(&url) }), ..IntentConfig::default() };
    let mut stage = config.build(&home()).unwrap();
    let mut out = Outputs::detached(&[DEFAULT_OUTPUT]);
    let started = Instant::now();
    let err = stage.process(Frame::text(FrameMeta::new("s1", "kitchen", 0), "tell me a joke"), &mut out).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    assert_eq!((err.error_type(), err.is_fatal()), ("chat_timeout", false));
    assert!(err.to_string().contains("did not answer within 300 ms"), "{err}");
    let pushed = out.take_pushed();
    assert!(matches!(&pushed[..], [(_, frame)] if frame.payload == Payload::Text(DIDNT_CATCH_THAT.into())));
}

#[test]
fn server_errors_are_reported_with_their_message() {
    let (url, _seen) = server(Behaviour::Fail);
    let err = ChatClient::new(fallback(&url)).unwrap().ask("s1", "hi").unwrap_err();
    assert_eq!(err.error_type(), "chat_status");
    assert_eq!(err.to_string(), "chat server answered 500: model overloaded");
}

#[test]
fn an_unreachable_server_is_reported() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let client = ChatClient::new(fallback(&format!("http://127.0.0.1:{port}"))).unwrap();
    let err = client.ask("s1", "hi").unwrap_err();
    assert_eq!(err.error_type(), "chat_unreachable", "{err}");
    assert_eq!(client.history_len("s1"), 0, "a failed exchange is not remembered");
}

/// One streamed completion (`text/event-stream`, chunked, one chunk per event): the
/// events of `before`, then, once `gate` says so (or after 5 s), those of `after`.
/// Says on the returned channel whether the gate opened in time.
fn sse_server(
    before: &'static [&'static str],
    after: &'static [&'static str],
    gate: mpsc::Receiver<()>,
) -> (String, mpsc::Receiver<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (opened_tx, opened) = mpsc::channel();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut request = Vec::new();
        let mut chunk = [0u8; 4096];
        while !String::from_utf8_lossy(&request).contains("\"stream\":true") {
            let n = stream.read(&mut chunk).unwrap();
            assert!(n > 0, "the request asks for a stream");
            request.extend_from_slice(&chunk[..n]);
        }
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        let send = |stream: &mut TcpStream, deltas: &[&str]| {
            for delta in deltas {
                let event = format!(
                    "data: {}\n\n",
                    json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "test-model",
                           "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": null}]})
                );
                stream.write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes()).unwrap();
            }
            stream.flush().unwrap();
        };
        send(&mut stream, before);
        let _ = opened_tx.send(gate.recv_timeout(Duration::from_secs(5)).is_ok());
        send(&mut stream, after);
        let done = "data: [DONE]\n\n";
        stream.write_all(format!("{:x}\r\n{done}\r\n0\r\n\r\n", done.len()).as_bytes()).unwrap();
    });
    (url, opened)
}

#[test]
fn a_streamed_answer_hands_on_its_first_sentence_before_the_rest_arrives() {
    let (gate_tx, gate) = mpsc::channel();
    let (url, opened) = sse_server(&["It is", " sunny.", " Take"], &[" a hat."], gate);
    let client = ChatClient::new(fallback(&url)).unwrap();
    let mut sentences = Vec::new();
    let (answer, rest) = client
        .ask_streaming("s1", "weather?", &mut |sentence| {
            sentences.push(sentence.to_string());
            let _ = gate_tx.send(());
        })
        .unwrap();
    assert!(opened.recv().unwrap(), "the first sentence was handed on while the server held back the rest");
    assert_eq!(sentences, ["It is sunny."]);
    assert_eq!((answer.as_str(), rest.as_str()), ("It is sunny. Take a hat.", "Take a hat."));
    assert_eq!(client.history_len("s1"), 1, "the whole answer is remembered");
}

#[test]
fn the_stage_sends_a_streamed_answer_on_as_pieces_of_one_reply() {
    let (gate_tx, gate) = mpsc::channel();
    gate_tx.send(()).unwrap();
    let (url, _) = sse_server(&["Paris is in France.", " It has"], &[" a tower."], gate);
    let config = IntentConfig { chat: Some(fallback(&url)), ..IntentConfig::default() };
    let mut stage = config.build(&home()).unwrap();
    let mut out = Outputs::detached(&[DEFAULT_OUTPUT]);
    stage.process(Frame::text(FrameMeta::new("s1", "kitchen", 0), "Where is Paris?"), &mut out).unwrap();
    let pieces: Vec<(String, bool)> = out
        .take_pushed()
        .into_iter()
        .map(|(_, frame)| match frame.payload {
            Payload::Text(text) => (text, frame.meta.domain.reply_continues),
            other => panic!("a reply only, got {other:?}"),
        })
        .collect();
    assert_eq!(pieces, [("Paris is in France.".to_string(), true), ("It has a tower.".to_string(), false)]);
}
