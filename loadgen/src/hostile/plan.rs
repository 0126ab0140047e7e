//! The closed list of misbehaviours `hostile` replays, in order, with what each needs.

use std::str::FromStr;

/// Which door a step knocks on; decides whether it can run against a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Door {
    Mqtt,
    /// The voice plane over MQTT: needs the engine with `--voice`.
    Voice,
    /// The Wyoming server: needs the engine with `--voice`.
    Wyoming,
    /// The HTTP API: needs the engine.
    Http,
}

macro_rules! steps {
    ($($variant:ident => $name:literal, $door:ident, $what:literal;)*) => {
        /// One misbehaviour.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Step { $($variant,)* }

        impl Step {
            pub const ALL: &'static [Step] = &[$(Step::$variant,)*];

            pub fn name(self) -> &'static str {
                match self { $(Step::$variant => $name,)* }
            }

            pub fn door(self) -> Door {
                match self { $(Step::$variant => Door::$door,)* }
            }

            /// What the step sends, at scale 1.
            pub fn what(self) -> &'static str {
                match self { $(Step::$variant => $what,)* }
            }
        }
    };
}

steps! {
    Utf8TopicV3 => "utf8-topic-v3", Mqtt,
        "MQTT 3.1.1 PUBLISH to `é/x` (non-ASCII first character); a subscriber to `é/#` should get it unchanged";
    Utf8TopicV5 => "utf8-topic-v5", Mqtt,
        "the same over MQTT 5";
    V5PropertiesToV3 => "v5-properties-to-v3", Mqtt,
        "MQTT 5 PUBLISH with a user property, message expiry and content type to an MQTT 3.1.1 subscriber, which must keep its connection and get the message";
    V5PropertiesRetained => "v5-properties-retained", Mqtt,
        "the same as a retained message; a fresh MQTT 3.1.1 client subscribes and must get it";
    ConnectThenReset => "connect-then-reset", Mqtt,
        "1,200 connections that send CONNECT and reset the TCP connection at once (SO_LINGER 0)";
    ResetAfterAccept => "reset-after-accept", Mqtt,
        "1,200 connections reset right after the TCP handshake";
    ResetMidConnect => "reset-mid-connect", Mqtt,
        "1,200 connections that send half a CONNECT, then reset";
    EmptyPublishKeepsRetained => "empty-publish-keeps-retained", Mqtt,
        "an empty non-retained PUBLISH to a topic with a retained message; a fresh subscriber must still get the retained one";
    ClientIdChurn => "client-id-churn", Mqtt,
        "20,000 connections with distinct client ids, each CONNECT then DISCONNECT (32 at a time)";
    DistinctTopics => "distinct-topics", Mqtt,
        "100,000 QoS 0 publishes, each to its own topic under `alicia/`";
    SubscribeChurn => "subscribe-churn", Mqtt,
        "50,000 distinct filters subscribed, then unsubscribed, on one connection";
    ManyRetained => "many-retained", Mqtt,
        "20,000 retained messages (MQTT 5, QoS 1) on distinct topics, then cleared";
    LargeRetained => "large-retained", Mqtt,
        "16 retained messages of 16 MiB each (MQTT 5, QoS 1), then cleared";
    WillMaxDelay => "will-max-delay", Mqtt,
        "100 MQTT 5 clients with a will delayed 4,294,967,295 s and session expiry 4,294,967,295 s that then vanish (reset)";
    ManyFiltersOneSubscribe => "subscribe-10000-filters", Mqtt,
        "one SUBSCRIBE packet with 10,000 filters, over MQTT 3.1.1 and 5";
    TopicAliases => "topic-aliases-64k", Mqtt,
        "an MQTT 5 client sets every topic alias the broker allows, each to a 65,000-byte topic, then publishes through each";
    NeverConnect => "never-connect", Mqtt,
        "2,000 TCP connections that never send CONNECT, held while an ordinary client must get through";
    HugeConnect => "huge-connect-announced", Mqtt,
        "8 connections announce a 268,435,455-byte CONNECT and send nothing more";
    StalledSubscribers => "stalled-subscribers", Mqtt,
        "3 subscribers stop reading while a 64 MiB message is published to them";
    MalformedLength => "malformed-remaining-length", Mqtt,
        "after CONNECT: a remaining length of 5 bytes (MQTT 3.1.1 and 5)";
    PublishQos3 => "publish-qos3", Mqtt,
        "after CONNECT: a PUBLISH with QoS 3";
    ReservedFlags => "reserved-flags", Mqtt,
        "after CONNECT: SUBSCRIBE with flags 0000, PINGREQ with flags 0001, packet type 0";
    GarbageAfterConnect => "garbage-after-connect", Mqtt,
        "CONNECT followed in the same write by 64 bytes of garbage";
    SecondConnect => "second-connect", Mqtt,
        "a second CONNECT on an established connection";
    WildcardTopic => "publish-wildcard-topic", Mqtt,
        "PUBLISH to topics with `+` and `#` (MQTT 3.1.1 and 5); a subscriber to the parent `#` should not get them";
    NulTopic => "publish-nul-topic", Mqtt,
        "PUBLISH to a topic containing U+0000 (MQTT 3.1.1 and 5)";
    EmptyTopic => "publish-empty-topic", Mqtt,
        "PUBLISH with an empty topic and no topic alias (MQTT 5), and with an empty topic (MQTT 3.1.1)";
    WyomingRateOne => "wyoming-rate-1", Wyoming,
        "Wyoming transcribe with audio-start rate 1 and 1.6 MB of audio chunks";
    WyomingHugeText => "wyoming-synthesize-1mb", Wyoming,
        "Wyoming synthesize with 1 MB of text";
    WyomingDisconnect => "wyoming-synthesize-disconnect", Wyoming,
        "Wyoming synthesize, then the client resets the connection at the first audio chunk";
    VoiceEmptyFrames => "voice-empty-frames", Voice,
        "a voice session on site kitchen whose 500 audio frames are empty";
    VoiceHugeSessionId => "voice-session-id-1mb", Voice,
        "a voice session whose session_id is 1 MB";
    VoiceUnknownSites => "voice-unknown-sites", Voice,
        "voice sessions on 1,000 sites the home does not know";
    SttRequestHuge => "stt-request-200mb", Voice,
        "a 200 MB JSON envelope on alicia/voice/stt/request";
    HttpSlowloris => "http-slowloris", Http,
        "200 HTTP connections that never finish their headers (a header line per second for 15 s) while /healthz must answer";
    HttpFlood => "http-flood", Http,
        "1,000 HTTP connections requesting /metrics back to back for 10 s while /healthz must answer";
}

impl FromStr for Step {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Step::ALL
            .iter()
            .copied()
            .find(|step| step.name() == s.trim())
            .ok_or_else(|| format!("unknown step `{s}`; `alicia-loadgen hostile --list` names them all"))
    }
}

/// Scales the step counts and sizes down for quick runs (tests), never below 1.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Scale(pub f64);

impl Scale {
    pub fn n(self, full: usize) -> usize {
        ((full as f64 * self.0).round() as usize).max(1)
    }

    /// A size in bytes, at least `floor`.
    pub fn bytes(self, full: usize, floor: usize) -> usize {
        ((full as f64 * self.0) as usize).max(floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parse_back() {
        for (i, step) in Step::ALL.iter().enumerate() {
            assert_eq!(step.name().parse::<Step>(), Ok(*step));
            assert!(Step::ALL[..i].iter().all(|s| s.name() != step.name()), "{} twice", step.name());
            assert!(!step.what().is_empty());
        }
        assert!("no-such-step".parse::<Step>().is_err());
        assert_eq!(Scale(0.01).n(20_000), 200);
        assert_eq!(Scale(0.0001).n(100), 1);
        assert_eq!(Scale(0.01).bytes(64 << 20, 1 << 20), 1 << 20);
    }
}
