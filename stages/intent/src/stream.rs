//! A chat answer as it arrives: the server-sent events of `"stream": true`
//! (`data: {"choices":[{"delta":{"content":"..."}}]}` lines, `data: [DONE]` at the end)
//! or, from a server that ignores `stream`, one plain JSON completion. Finished
//! sentences are handed on while the rest is still coming, so the first one can be
//! spoken before the answer is whole.

use alicia_speech::{finished_len, split_sentences};
use serde_json::Value;

use crate::error::ChatError;
use crate::http::Head;

/// Longest SSE line kept while waiting for its end; a delta is a few words.
const MAX_LINE_BYTES: usize = 64 << 10;

/// The answer so far.
#[derive(Debug, Default)]
pub(crate) struct StreamedAnswer {
    /// A JSON body (no event stream), kept until it ends.
    json: Vec<u8>,
    /// An event line not ended yet.
    line: Vec<u8>,
    /// The content so far.
    text: String,
    /// Bytes of `text` already handed on as finished sentences.
    spoken: usize,
    /// `data: [DONE]` came.
    done: bool,
}

/// The whole answer once its body has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finished {
    /// On one line, trimmed: what the conversation remembers.
    pub(crate) answer: String,
    /// What was not handed on yet as a finished sentence (all of it for a JSON body).
    pub(crate) rest: String,
}

impl StreamedAnswer {
    /// Takes more of the body; each sentence finished by it goes to `sentence`, in
    /// order, on one line.
    pub(crate) fn feed(&mut self, head: Head, bytes: &[u8], sentence: &mut dyn FnMut(&str)) -> Result<(), ChatError> {
        if !(head.event_stream && (200..300).contains(&head.status)) {
            self.json.extend_from_slice(bytes);
            return Ok(());
        }
        for &byte in bytes {
            if byte != b'\n' {
                if self.line.len() >= MAX_LINE_BYTES {
                    return Err(ChatError::Protocol(format!("event line longer than {MAX_LINE_BYTES} bytes")));
                }
                self.line.push(byte);
                continue;
            }
            let line = std::mem::take(&mut self.line);
            self.event_line(&line)?;
        }
        let ready = finished_len(&self.text[self.spoken..]);
        for piece in split_sentences(&self.text[self.spoken..self.spoken + ready]) {
            sentence(&one_line(piece));
        }
        self.spoken += ready;
        Ok(())
    }

    /// The answer, once the body has ended.
    pub(crate) fn finish(mut self, head: Head) -> Result<Finished, ChatError> {
        if !(head.event_stream && (200..300).contains(&head.status)) {
            let answer = crate::chat::parse_answer(head.status, &self.json)?;
            return Ok(Finished { rest: answer.clone(), answer });
        }
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.event_line(&line)?;
        }
        if !self.done && self.text.is_empty() {
            return Err(ChatError::Response("the event stream ended without an answer".into()));
        }
        let answer = one_line(&self.text);
        if answer.is_empty() {
            return Err(ChatError::Response("the answer is empty".into()));
        }
        Ok(Finished { rest: one_line(&self.text[self.spoken..]), answer })
    }

    /// One line of the event stream: a `data:` field adds its delta; comments
    /// (`: keep-alive`), other fields and the blank lines between events say nothing.
    fn event_line(&mut self, line: &[u8]) -> Result<(), ChatError> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(data) = line.strip_prefix(b"data:") else { return Ok(()) };
        let data = data.strip_prefix(b" ").unwrap_or(data);
        if data == b"[DONE]" {
            self.done = true;
            return Ok(());
        }
        if self.done {
            return Ok(());
        }
        let event: Value =
            serde_json::from_slice(data).map_err(|err| ChatError::Response(format!("event is not json: {err}")))?;
        if let Some(message) = event.pointer("/error/message").and_then(Value::as_str) {
            return Err(ChatError::Response(format!("the stream broke off: {message}")));
        }
        if let Some(delta) = event.pointer("/choices/0/delta/content").and_then(Value::as_str) {
            self.text.push_str(delta);
        }
        Ok(())
    }
}

/// `text` trimmed, its whitespace runs one space: a spoken line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const SSE: Head = Head { status: 200, event_stream: true };

    fn event(delta: &str) -> String {
        format!("data: {}\n\n", serde_json::json!({"choices": [{"index": 0, "delta": {"content": delta}}]}))
    }

    #[test]
    fn sentences_are_handed_on_as_soon_as_they_are_finished() {
        let mut answer = StreamedAnswer::default();
        let mut spoken = Vec::new();
        let mut feed = |answer: &mut StreamedAnswer, bytes: &str| {
            answer.feed(SSE, bytes.as_bytes(), &mut |s| spoken.push(s.to_string())).unwrap();
        };
        feed(&mut answer, ": keep-alive\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n");
        feed(&mut answer, &event("It is"));
        feed(&mut answer, &event(" sunny."));
        // Split mid-line: the event waits for its end.
        let next = event(" Take a hat.\nOr two");
        let (a, b) = next.split_at(9);
        feed(&mut answer, a);
        feed(&mut answer, b);
        feed(&mut answer, &event("."));
        feed(&mut answer, "data: [DONE]\n\n");
        assert_eq!(spoken, ["It is sunny.", "Take a hat."]);
        let finished = answer.finish(SSE).unwrap();
        assert_eq!(finished.answer, "It is sunny. Take a hat. Or two.");
        assert_eq!(finished.rest, "Or two.");
    }

    #[test]
    fn a_plain_json_body_is_one_answer() {
        let head = Head { status: 200, event_stream: false };
        let mut answer = StreamedAnswer::default();
        let body = br#"{"choices":[{"index":0,"message":{"role":"assistant","content":"Hi. There."}}]}"#;
        answer.feed(head, body, &mut |_| panic!("nothing is spoken before a JSON body ends")).unwrap();
        let finished = answer.finish(head).unwrap();
        assert_eq!((finished.answer.as_str(), finished.rest.as_str()), ("Hi. There.", "Hi. There."));
    }

    #[test]
    fn broken_streams_are_errors() {
        let mut answer = StreamedAnswer::default();
        let err = answer.feed(SSE, b"data: {not json\n", &mut |_| {}).unwrap_err();
        assert_eq!(err.error_type(), "chat_response");
        let mut answer = StreamedAnswer::default();
        answer.feed(SSE, b"data: {\"error\":{\"message\":\"overloaded\"}}\n", &mut |_| {}).unwrap_err();
        let empty = StreamedAnswer::default().finish(SSE).unwrap_err();
        assert!(empty.to_string().contains("ended without an answer"), "{empty}");
        let status = Head { status: 503, event_stream: true };
        let mut answer = StreamedAnswer::default();
        answer.feed(status, br#"{"error":{"message":"busy"}}"#, &mut |_| {}).unwrap();
        assert_eq!(answer.finish(status).unwrap_err().to_string(), "chat server answered 503: busy");
    }
}
