//! `[voice.chat]` live, with the real models and an OpenAI-compatible server on an
//! ephemeral port (`alicia_e2e::chat_server`): a spoken question the matcher cannot
//! place is answered by the chat model and spoken sentence by sentence as the answer
//! streams in; `alicia/voice/ai/request` is answered on `alicia/voice/ai/response` by the
//! matcher (its device command published) or the chat model; bad requests get their
//! error on `alicia/voice/ai/error`; config mistakes are named by their path. The
//! tests that read the `llm` breaker's meters (process-global) have binaries of their
//! own: `voice_chat_breaker.rs`, `voice_chat_live.rs`.

use std::process::Command;

use alicia_e2e::ai_requests::{ai_request, chat_section, Watcher, REQUEST};
use alicia_e2e::assert_bus_works;
use alicia_e2e::chat_server::ChatServer;
use alicia_e2e::clients::V4Client;
use alicia_e2e::engine::alicia_binary;
use alicia_e2e::voice::{espeak_pcm, quiet_room, stream_in_real_time, voice_engine_with, Wyoming};
use alicia_envelope::{Destination, Envelope, MessageType};
use rumqttc::{Publish, QoS};
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoken_question_is_answered_by_the_chat_model_sentence_by_sentence() {
    let server = ChatServer::holding_back();
    let engine = voice_engine_with(|config| config.voice.chat = Some(chat_section(server.url()))).await;
    let port = engine.mqtt_port();
    let speaker = "alicia/devices/kitchen_speaker/audio";
    let mut watcher = Watcher::connect(port, "chat-watcher", &[speaker, "alicia/voice/tts/response"]).await;
    let (satellite, _) = V4Client::connect(port, "kitchen-satellite", |_| {}).await;

    let mut speech = espeak_pcm("tell me a joke");
    speech.extend(quiet_room(900));
    let envelope = |data: Value| {
        Envelope::new("kitchen_satellite", Destination::Service("alicia".into()), MessageType::Event, data)
            .encode()
            .to_vec()
    };
    let publish = |topic: &'static str, payload: Vec<u8>| {
        let client = satellite.client.clone();
        async move { client.publish(topic, QoS::AtLeastOnce, false, payload).await.unwrap() }
    };
    publish("alicia/voice/audio/kitchen/start", envelope(json!({"session_id": "q-1"}))).await;
    stream_in_real_time(&satellite.client, "kitchen", &speech).await;
    publish("alicia/voice/audio/kitchen/stop", envelope(json!({"session_id": "q-1"}))).await;

    // The server holds the second sentence back until released: the first reply audio
    // can only come from the first sentence, spoken before the answer was whole.
    let first = watcher.take(speaker, |p| !p.payload.is_empty()).await;
    assert_eq!(server.finished(), 0, "the answer is not whole yet");
    let announce = watcher.take("alicia/voice/tts/response", |_| true).await;
    assert_eq!(Envelope::decode(&announce.payload).unwrap().payload.data["session_id"], "q-1");
    server.release();
    let mut reply = first.payload.to_vec();
    loop {
        let p = watcher.take(speaker, |_| true).await;
        if p.payload.is_empty() {
            break;
        }
        reply.extend_from_slice(&p.payload);
    }
    assert_eq!(server.finished(), 1);

    let requests = server.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["stream"], true);
    assert_eq!(requests[0]["model"], "test-model");
    assert_eq!(requests[0]["messages"][0], json!({"role": "system", "content": "You are Alicia. Be brief."}));
    let asked = requests[0]["messages"][1]["content"].as_str().unwrap().to_lowercase();
    assert!(asked.contains("joke"), "{asked}");

    // One reply, both sentences: Whisper hears "You asked: tell me a joke. 0 before."
    // (tiny.en hears the first words as "you ask" as often as "you asked").
    let mut wyoming = Wyoming::connect(engine.engine.wyoming_addr().unwrap()).await;
    let said = wyoming.transcribe(&reply).await;
    assert!(said.contains("you ask") && said.contains("joke") && said.contains("before"), "heard {said:?}");
    engine.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_requests_are_answered_on_ai_response_by_the_matcher_or_the_chat_model() {
    let server = ChatServer::start();
    let engine = voice_engine_with(|config| {
        config.voice.chat = Some(chat_section(server.url()));
        config.voice.max_ai_text_chars = 100;
    })
    .await;
    let port = engine.mqtt_port();
    let topics = [
        "alicia/voice/ai/response",
        "alicia/voice/ai/error",
        "alicia/devices/+/command",
        "alicia/voice/command/result",
    ];
    let mut watcher = Watcher::connect(port, "ai-watcher", &topics).await;
    let (dashboard, _) = V4Client::connect(port, "dashboard", |_| {}).await;
    let ask = |data: Value| {
        let request = ai_request(data);
        let client = dashboard.client.clone();
        let bytes = request.encode().to_vec();
        async move {
            client.publish(REQUEST, QoS::AtLeastOnce, false, bytes).await.unwrap();
            request
        }
    };

    // A device request: the matcher's, its command published as a spoken one's is.
    let request = ask(json!({"text": "Turn on the lights, please.", "site_id": "kitchen"})).await;
    let answer = watcher.answer_to("alicia/voice/ai/response", &request).await;
    assert_eq!(answer.message_type, MessageType::Response);
    assert_eq!(answer.destination, Destination::Service("dashboard".into()));
    let data = &answer.payload.data;
    assert_eq!(data["text"], "Turning on the kitchen lights.");
    assert_eq!((data["intent"].as_str(), data["answered_by"].as_str()), (Some("turn_on"), Some("matcher")));
    assert_eq!(data["command"], json!({"action": "turn_on", "device_id": "kitchen_lights"}));
    assert_eq!(
        (data["site_id"].as_str(), data["session_id"].as_str()),
        (Some("kitchen"), Some(&*request.message_id.to_string()))
    );
    let command = watcher.take("alicia/devices/kitchen_lights/command", |_| true).await;
    let command = Envelope::decode(&command.payload).unwrap();
    assert_eq!(command.message_type, MessageType::Command);
    assert_eq!(command.payload.data, json!({"action": "turn_on", "device_id": "kitchen_lights"}));
    let result = watcher.take("alicia/voice/command/result", |_| true).await;
    assert_eq!(Envelope::decode(&result.payload).unwrap().payload.data["status"], "sent");

    // Every light of the home: one command each, listed in `commands`.
    let request = ask(json!({"text": "Turn off all the lights.", "site_id": "kitchen"})).await;
    let data = watcher.answer_to("alicia/voice/ai/response", &request).await.payload.data;
    assert_eq!(
        (data["text"].as_str(), data["intent"].as_str()),
        (Some("Turning off all the lights."), Some("turn_off"))
    );
    let lights = ["kitchen_lights", "living_room_lamp", "bedroom_lamp", "hallway_lights"];
    let listed: Vec<Value> = lights.iter().map(|id| json!({"action": "turn_off", "device_id": id})).collect();
    assert_eq!((&data["command"], &data["commands"]), (&Value::Null, &Value::from(listed)));
    for id in lights {
        let command = watcher.take(&format!("alicia/devices/{id}/command"), |_| true).await;
        assert_eq!(Envelope::decode(&command.payload).unwrap().payload.data["action"], "turn_off");
    }
    assert!(server.requests().is_empty(), "a request the matcher knows never reaches the model");

    // A question: the chat model's, streamed; a session keeps its context.
    let request = ask(json!({"text": "Tell me a joke.", "session_id": "chat-1"})).await;
    let data = watcher.answer_to("alicia/voice/ai/response", &request).await.payload.data;
    assert_eq!(data["text"], "You asked: Tell me a joke. 0 before.");
    assert_eq!((data["intent"].as_str(), data["answered_by"].as_str()), (Some("chat"), Some("chat")));
    assert_eq!((data["session_id"].as_str(), &data["command"]), (Some("chat-1"), &Value::Null));
    let request = ask(json!({"text": "Another one?", "session_id": "chat-1"})).await;
    let data = watcher.answer_to("alicia/voice/ai/response", &request).await.payload.data;
    assert_eq!(data["text"], "You asked: Another one. 1 before.");
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r["stream"] == true));
    let roles: Vec<&str> =
        requests[1]["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);

    // Bad requests: their error, correlated, on alicia/voice/ai/error.
    for (data, error_type, message) in [
        (json!({"text": "  "}), "missing_text", "payload.data.text must hold the request, as words"),
        (json!({"text": "x".repeat(101)}), "text_too_long", "payload.data.text has 101 characters; at most 100"),
        (
            json!({"text": "turn on the lights", "site_id": "garage"}),
            "unknown_site",
            "unknown site \"garage\" (sites: bedroom, hallway, kitchen, living_room)",
        ),
        (json!({"text": "hi", "session_id": 7}), "bad_session_id", "payload.data.session_id must be a string"),
    ] {
        let request = ask(data).await;
        let error = watcher.answer_to("alicia/voice/ai/error", &request).await.payload.data;
        assert_eq!((error["error_type"].as_str(), error["message"].as_str()), (Some(error_type), Some(message)));
    }
    // Not an envelope at all: the gatekeeper names the problem on the same topic.
    dashboard.client.publish(REQUEST, QoS::AtLeastOnce, false, b"{\"text\": \"no envelope\"}".to_vec()).await.unwrap();
    let gatekeepers =
        |p: &Publish| Envelope::decode(&p.payload).is_ok_and(|e| e.payload.data["topic"] == "alicia/voice/ai/request");
    let refusal = Envelope::decode(&watcher.take("alicia/voice/ai/error", gatekeepers).await.payload).unwrap();
    assert!(refusal.payload.data["error_type"].is_string() && refusal.payload.data["field"].is_string());
    assert_eq!(server.requests().len(), 2, "nothing bad reached the model");
    assert_bus_works(&engine).await;
    engine.stop().await;
}

#[test]
fn check_config_names_every_chat_mistake_by_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("alicia.toml");
    let missing = dir.path().join("no-such.key");
    let text = format!(
        "[voice.chat]\nurl = \"https://api.openai.com/v1\"\nmodel = \"gpt\"\napi_key_file = {:?}\n\
         timeout_ms = 0\n[voice.chat.breaker]\nmax_attempts = 0\n",
        missing.display().to_string()
    );
    std::fs::write(&file, text).unwrap();
    let out = Command::new(alicia_binary()).arg("check-config").arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for expected in [
        "voice.chat.url: \"https://api.openai.com/v1\" is https",
        &format!("voice.chat.api_key_file: cannot read {}", missing.display()),
        "voice.chat.timeout_ms: 0 is out of range",
        "voice.chat.breaker.max_attempts: must be at least 1",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in:\n{stderr}");
    }
    std::fs::write(
        &file,
        "[voice.chat]\nurl = \"http://127.0.0.1:8081\"\nmodel = \"m\"\napi_key_env = \"ALICIA_E2E_UNSET_LLM_KEY\"\n",
    )
    .unwrap();
    let out = Command::new(alicia_binary()).arg("check-config").arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("voice.chat.api_key_env: environment variable ALICIA_E2E_UNSET_LLM_KEY is not set"),
        "{stderr}"
    );
}
