//! `alicia say --site`: asks the running engine, over MQTT, to speak on a site's
//! speaker, and follows the reply as the speaker gets it: the announcement on
//! `alicia/voice/tts/response` correlated to the request, then the PCM chunks on the
//! announced audio topic up to the empty message that ends them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use alicia_envelope::{topics, Destination, Envelope, MessageType, CORRELATION_ID_KEY};
use alicia_speech::write_wav;
use alicia_stage_tts::OUTPUT_FORMAT;
use anyhow::{bail, Context};
use rumqttc::{AsyncClient, Event, EventLoop, Incoming, MqttOptions, QoS};
use serde_json::{json, Value};

/// How long the engine may take to start speaking and to finish.
const PATIENCE: Duration = Duration::from_secs(30);
/// Audio kept from speakers other than the announced one while the announcement is on
/// its way (another filter's messages may come first); past it they are dropped.
const MAX_BUFFERED: usize = 16 << 20;

pub fn say_on_site(mqtt: SocketAddr, text: &str, site: &str, out: Option<&Path>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (speaker, audio, announced_after) = runtime.block_on(async {
        tokio::time::timeout(PATIENCE, ask(mqtt, text, site)).await.unwrap_or_else(|_| {
            bail!(
                "no reply from the engine at {mqtt} within {PATIENCE:?} (is `alicia serve` running with the voice on?)"
            )
        })
    })?;
    println!(
        "spoken on {speaker}: {:.2} s of audio, first audio {:.0} ms after the request",
        audio.len() as f64 / f64::from(OUTPUT_FORMAT.sample_rate) / 2.0,
        announced_after.as_secs_f64() * 1e3
    );
    if let Some(out) = out {
        let file = std::fs::File::create(out).with_context(|| format!("cannot write {}", out.display()))?;
        write_wav(std::io::BufWriter::new(file), &audio, OUTPUT_FORMAT)?;
        println!("saved:      {} (what the speaker got)", out.display());
    }
    Ok(())
}

/// The speaker, its audio, and how long after the request the announcement came.
async fn ask(mqtt: SocketAddr, text: &str, site: &str) -> anyhow::Result<(String, Vec<u8>, Duration)> {
    let mut options =
        MqttOptions::new(format!("alicia-say-{}", std::process::id()), mqtt.ip().to_string(), mqtt.port());
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = AsyncClient::new(options, 64);
    let filters = [topics::VOICE_TTS_RESPONSE, topics::VOICE_TTS_ERROR, "alicia/devices/+/audio"];
    for filter in filters {
        client.subscribe(filter, QoS::AtLeastOnce).await?;
    }
    let mut acked = 0;
    while acked < filters.len() {
        if let Incoming::SubAck(_) = next(&mut events, mqtt).await? {
            acked += 1;
        }
    }

    let request = Envelope::new(
        "alicia-say",
        Destination::Service("alicia".into()),
        MessageType::Request,
        json!({"text": text, "site_id": site}),
    );
    let id = Value::String(request.message_id.to_string());
    let sent = Instant::now();
    client.publish(topics::VOICE_TTS_REQUEST, QoS::AtLeastOnce, false, request.encode().to_vec()).await?;

    let mut announced: Option<(String, String, Duration)> = None;
    let mut audio: HashMap<String, (Vec<u8>, bool)> = HashMap::new();
    let mut buffered = 0;
    loop {
        let Incoming::Publish(message) = next(&mut events, mqtt).await? else { continue };
        let topic = message.topic.as_str();
        if topic == topics::VOICE_TTS_RESPONSE || topic == topics::VOICE_TTS_ERROR {
            let Ok(envelope) = Envelope::decode(&message.payload) else { continue };
            if envelope.payload.metadata.get(CORRELATION_ID_KEY) != Some(&id) {
                continue;
            }
            let data = &envelope.payload.data;
            if topic == topics::VOICE_TTS_ERROR {
                let field = |name: &str| data[name].as_str().unwrap_or_default().to_string();
                bail!("the engine refused: {}: {}", field("error_type"), field("message"));
            }
            let field = |name: &str| data[name].as_str().unwrap_or_default().to_string();
            announced = Some((field("speaker"), field("audio_topic"), sent.elapsed()));
        } else {
            let wanted = announced.as_ref().is_none_or(|(_, audio_topic, _)| audio_topic == topic);
            if wanted && buffered + message.payload.len() <= MAX_BUFFERED {
                buffered += message.payload.len();
                let (pcm, ended) = audio.entry(topic.to_string()).or_default();
                pcm.extend_from_slice(&message.payload);
                *ended |= message.payload.is_empty();
            }
        }
        if let Some((speaker, audio_topic, after)) = &announced {
            if let Some((pcm, true)) = audio.get_mut(audio_topic) {
                let pcm = std::mem::take(pcm);
                let _ = client.disconnect().await;
                return Ok((speaker.clone(), pcm, *after));
            }
        }
    }
}

async fn next(events: &mut EventLoop, mqtt: SocketAddr) -> anyhow::Result<Incoming> {
    loop {
        match events.poll().await {
            Ok(Event::Incoming(incoming)) => return Ok(incoming),
            Ok(Event::Outgoing(_)) => {}
            Err(e) => bail!("cannot talk to the engine at {mqtt}: {e} (start it with `make run`, or pass --mqtt)"),
        }
    }
}
