use proptest::prelude::*;
use serde_json::json;

use super::*;

const HEADER_LIMIT: usize = 1024;
const DATA_LIMIT: usize = 512;
const BODY_LIMIT: usize = 4096;

fn decoder() -> EventDecoder {
    EventDecoder::new(HEADER_LIMIT, DATA_LIMIT, BODY_LIMIT)
}

/// Everything `bytes` decodes to, errors included, fed in one piece.
fn decode_all(bytes: &[u8]) -> Vec<Result<Event, DecodeError>> {
    decode_in_pieces(bytes, &[])
}

/// Everything `bytes` decodes to when it arrives cut at `cuts` (ascending offsets),
/// ending with the end of the stream.
fn decode_in_pieces(bytes: &[u8], cuts: &[usize]) -> Vec<Result<Event, DecodeError>> {
    let mut decoder = decoder();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut start = 0;
    for &end in cuts.iter().chain(std::iter::once(&bytes.len())) {
        buf.extend_from_slice(&bytes[start..end]);
        start = end;
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(event)) => out.push(Ok(event)),
                Ok(None) => break,
                Err(err) => out.push(Err(err)),
            }
        }
    }
    loop {
        match decoder.decode_eof(&mut buf) {
            Ok(Some(event)) => out.push(Ok(event)),
            Ok(None) => break,
            Err(err) => out.push(Err(err)),
        }
    }
    out
}

fn event(kind: &str, data: Value, payload: &'static [u8]) -> Event {
    Event::new(kind).with_data(data).with_payload(Bytes::from_static(payload))
}

#[test]
fn a_header_alone_is_an_event() {
    let decoded = decode_all(b"{\"type\": \"describe\"}\n");
    assert_eq!(decoded, [Ok(Event::new("describe"))]);
}

#[test]
fn inline_data_and_extra_data_are_merged_extra_winning() {
    let extra = br#"{"text": "from extra", "voice": {"name": "v"}}"#;
    let mut bytes = format!(
        "{{\"type\":\"synthesize\",\"data\":{{\"text\":\"inline\",\"keep\":1}},\"data_length\":{}}}\n",
        extra.len()
    )
    .into_bytes();
    bytes.extend_from_slice(extra);
    let decoded = decode_all(&bytes);
    let expected = event("synthesize", json!({"text": "from extra", "keep": 1, "voice": {"name": "v"}}), b"");
    assert_eq!(decoded, [Ok(expected)]);
}

#[test]
fn a_payload_follows_the_header() {
    let decoded =
        decode_all(b"{\"type\":\"audio-chunk\",\"data\":{\"rate\":16000},\"payload_length\":4}\n\x01\x02\x03\x04");
    assert_eq!(decoded, [Ok(event("audio-chunk", json!({"rate": 16000}), b"\x01\x02\x03\x04"))]);
}

#[test]
fn data_then_payload() {
    let bytes = b"{\"type\":\"audio-chunk\",\"data_length\":13,\"payload_length\":2,\"version\":\"1.5.0\"}\n{\"rate\":8000}\xff\x7f";
    assert_eq!(decode_all(bytes), [Ok(event("audio-chunk", json!({"rate": 8000}), b"\xff\x7f"))]);
}

#[test]
fn the_payload_is_a_slice_of_the_read_buffer() {
    let mut buf = BytesMut::from(&b"{\"type\":\"audio-chunk\",\"payload_length\":3}\nabc"[..]);
    let start = buf.as_ptr() as usize;
    let end = start + buf.len();
    let event = decoder().decode(&mut buf).unwrap().unwrap();
    let at = event.payload.as_ptr() as usize;
    assert!((start..end).contains(&at), "payload was copied out of the read buffer");
}

#[test]
fn encoding_follows_the_reference_layout_and_round_trips() {
    let original = event("transcript", json!({"text": "héllo wörld"}), b"");
    let wire = original.to_bytes();
    let newline = wire.iter().position(|&b| b == b'\n').unwrap();
    let header: Value = serde_json::from_slice(&wire[..newline]).unwrap();
    let data = &wire[newline + 1..];
    assert_eq!(header["type"], "transcript");
    assert_eq!(header["version"], PROTOCOL_VERSION);
    assert_eq!(header["data_length"], data.len());
    assert!(header.get("payload_length").is_none() && header.get("data").is_none());
    assert_eq!(decode_all(&wire), [Ok(original)]);

    let chunk = event("audio-chunk", json!({"rate": 16000, "width": 2, "channels": 1}), b"\x00\x01\x02\x03");
    assert_eq!(decode_all(&chunk.to_bytes()), [Ok(chunk)]);
    let bare = Event::new("audio-stop");
    assert_eq!(
        &bare.to_bytes()[..],
        format!("{{\"type\":\"audio-stop\",\"version\":\"{PROTOCOL_VERSION}\"}}\n").as_bytes()
    );
}

#[test]
fn a_stream_split_at_every_byte_boundary_decodes_the_same() {
    let events = [
        event("transcribe", json!({"language": "en"}), b""),
        event("audio-start", json!({"rate": 16000, "width": 2, "channels": 1}), b""),
        event("audio-chunk", json!({"rate": 16000, "width": 2, "channels": 1}), b"\x01\x00\x02\x00\x03\x00"),
        Event::new("audio-stop"),
    ];
    let mut wire: Vec<u8> = events.iter().flat_map(|e| e.to_bytes()).collect();
    // A refused event in the middle must not shift where the next one starts.
    wire.extend_from_slice(b"not json\n{\"payload_length\":3}\nxyz");
    wire.extend_from_slice(&Event::new("describe").to_bytes());
    let whole = decode_all(&wire);
    assert_eq!(whole.len(), 7, "{whole:?}");
    assert_eq!(whole[6], Ok(Event::new("describe")));
    for cut in 0..=wire.len() {
        assert_eq!(decode_in_pieces(&wire, &[cut]), whole, "cut at byte {cut}");
    }
    let every_byte: Vec<usize> = (1..wire.len()).collect();
    assert_eq!(decode_in_pieces(&wire, &every_byte), whole);
}

#[test]
fn garbage_lines_are_reported_and_skipped() {
    let decoded = decode_all(b"hello\n[1,2]\n{\"type\": 7}\n{\"data\": {}}\n\n  \r\n{\"type\":\"describe\"}\n");
    assert_eq!(
        decoded,
        [
            Err(DecodeError::MalformedHeader("expected value at line 1 column 1".into())),
            Err(DecodeError::MalformedHeader("not a JSON object".into())),
            Err(DecodeError::MalformedHeader("`type` is not a non-empty string".into())),
            Err(DecodeError::MalformedHeader("`type` is missing".into())),
            Ok(Event::new("describe")),
        ]
    );
    assert_eq!(
        decoded[0].as_ref().unwrap_err().to_string(),
        "malformed event header: expected value at line 1 column 1"
    );
}

#[test]
fn bad_lengths_cannot_be_skipped_so_the_next_line_is_tried() {
    let decoded = decode_all(
        b"{\"type\":\"a\",\"payload_length\":-1}\n{\"type\":\"b\",\"data_length\":\"2\"}\n{\"type\":\"c\"}\n",
    );
    assert_eq!(
        decoded,
        [
            Err(DecodeError::MalformedHeader("`payload_length` is not a non-negative integer".into())),
            Err(DecodeError::MalformedHeader("`data_length` is not a non-negative integer".into())),
            Ok(Event::new("c")),
        ]
    );
}

#[test]
fn bad_data_costs_only_its_event() {
    let decoded = decode_all(
        b"{\"type\":\"x\",\"data\":[1]}\n{\"type\":\"y\",\"data_length\":3,\"payload_length\":2}\n[1]ab{\"type\":\"z\"}\n",
    );
    assert_eq!(
        decoded,
        [
            Err(DecodeError::MalformedHeader("`data` is not a JSON object".into())),
            Err(DecodeError::MalformedData {
                kind: "y".into(),
                reason: "invalid type: sequence, expected a map at line 1 column 0".into()
            }),
            Ok(Event::new("z")),
        ]
    );
    assert_eq!(
        decoded[1].as_ref().unwrap_err().to_string(),
        "malformed `y` data: invalid type: sequence, expected a map at line 1 column 0"
    );
}

#[test]
fn an_oversized_body_is_refused_at_once_and_skipped_as_it_arrives() {
    let mut wire = format!("{{\"type\":\"audio-chunk\",\"payload_length\":{}}}\n", BODY_LIMIT + 1).into_bytes();
    wire.extend(std::iter::repeat_n(0u8, BODY_LIMIT + 1));
    wire.extend_from_slice(b"{\"type\":\"describe\"}\n");

    let mut decoder = decoder();
    let mut buf = BytesMut::from(&wire[..60]);
    let err = decoder.decode(&mut buf).unwrap_err();
    assert_eq!(err.to_string(), "`audio-chunk` payload of 4097 bytes exceeds the 4096-byte limit");
    assert_eq!(err.reason(), ErrorReason::PayloadTooLarge);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert!(buf.is_empty(), "skipped bytes are not kept");
    buf.extend_from_slice(&wire[60..]);
    assert_eq!(decoder.decode(&mut buf), Ok(Some(Event::new("describe"))));

    // Each length has its own limit; the data is checked first.
    let big_data = b"{\"type\":\"x\",\"data_length\":513,\"payload_length\":97}\n";
    assert_eq!(
        decode_all(big_data),
        [Err(DecodeError::DataTooLarge { kind: "x".into(), size: 513, limit: DATA_LIMIT })]
    );
    let huge = format!("{{\"type\":\"x\",\"data_length\":{},\"payload_length\":{}}}\n", 1, u64::MAX);
    assert_eq!(
        decode_all(huge.as_bytes()),
        [Err(DecodeError::PayloadTooLarge { kind: "x".into(), size: u64::MAX, limit: BODY_LIMIT })]
    );
}

#[test]
fn the_decoder_says_when_an_event_is_under_way() {
    let mut decoder = decoder();
    let mut buf = BytesMut::new();
    assert!(!decoder.in_event(&buf));
    buf.extend_from_slice(b"{\"type\":\"a\",\"payload_length\":4}\n01");
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert!(decoder.in_event(&buf));
    buf.extend_from_slice(b"23");
    assert_eq!(decoder.decode(&mut buf).unwrap().unwrap().payload.len(), 4);
    assert!(!decoder.in_event(&buf), "nothing of the next event yet");
    buf.extend_from_slice(b"{");
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert!(decoder.in_event(&buf));
}

#[test]
fn an_over_long_header_is_skipped_to_its_newline() {
    let mut wire = vec![b'{'; HEADER_LIMIT * 3];
    wire.extend_from_slice(b"\n{\"type\":\"describe\"}\n");
    let expected = [Err(DecodeError::HeaderTooLong { limit: HEADER_LIMIT }), Ok(Event::new("describe"))];
    assert_eq!(decode_all(&wire), expected);
    let cuts: Vec<usize> = (1..wire.len()).step_by(100).collect();
    assert_eq!(decode_in_pieces(&wire, &cuts), expected);
    assert_eq!(expected[0].as_ref().unwrap_err().to_string(), "event header exceeds 1024 bytes without a newline");
}

#[test]
fn a_stream_ending_inside_an_event_is_truncated() {
    assert_eq!(
        decode_all(b"{\"type\":\"describe\"}\n{\"type\":\"aud"),
        [Ok(Event::new("describe")), Err(DecodeError::TruncatedHeader { received: 12 })]
    );
    let truncated = decode_all(b"{\"type\":\"audio-chunk\",\"data_length\":2,\"payload_length\":8}\n{}\x01\x02");
    assert_eq!(truncated, [Err(DecodeError::TruncatedBody { kind: "audio-chunk".into(), received: 4, expected: 10 })]);
    assert_eq!(
        truncated[0].as_ref().unwrap_err().to_string(),
        "truncated event: the connection closed after 4 of 10 bytes of `audio-chunk` data and payload"
    );
    assert_eq!(decode_all(b"{\"type\":\"describe\"}\n  \n"), [Ok(Event::new("describe"))]);
    assert_eq!(decode_all(b""), []);
}

#[test]
fn the_decoder_asks_for_the_rest_of_a_body() {
    let mut decoder = decoder();
    let mut buf = BytesMut::from(&b"{\"type\":\"a\",\"payload_length\":100}\n0123456789"[..]);
    assert_eq!(decoder.decode(&mut buf), Ok(None));
    assert_eq!(decoder.bytes_wanted(&buf), 90);
}

fn arb_event() -> impl Strategy<Value = Event> {
    let kind = "[a-z][a-z-]{0,12}";
    let data = proptest::collection::btree_map("[a-z_]{1,8}", any::<i64>(), 0..4);
    let text = proptest::option::of(".{0,20}");
    let payload = proptest::collection::vec(any::<u8>(), 0..64);
    (kind, data, text, payload).prop_map(|(kind, data, text, payload)| {
        let mut map: Map<String, Value> = data.into_iter().map(|(k, v)| (k, Value::from(v))).collect();
        if let Some(text) = text {
            map.insert("text".into(), Value::from(text));
        }
        Event { kind, data: map, payload: Bytes::from(payload) }
    })
}

proptest! {
    #[test]
    fn any_events_cut_anywhere_round_trip(
        events in proptest::collection::vec(arb_event(), 1..6),
        mut cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let wire: Vec<u8> = events.iter().flat_map(|e| e.to_bytes()).collect();
        let mut offsets: Vec<usize> = cuts.drain(..).map(|i| i.index(wire.len() + 1)).collect();
        offsets.sort_unstable();
        let decoded = decode_in_pieces(&wire, &offsets);
        let expected: Vec<Result<Event, DecodeError>> = events.into_iter().map(Ok).collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_always_drain(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut decoder = decoder();
        let mut buf = BytesMut::from(&bytes[..]);
        for _ in 0..bytes.len() + 2 {
            if let Ok(None) = decoder.decode_eof(&mut buf) {
                break;
            }
        }
        prop_assert!(buf.is_empty());
    }
}
