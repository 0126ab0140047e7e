//! The intent stage of the voice pipeline: what the user asked for, from the words of
//! a transcript and the site it was heard at, matched locally against the home's
//! rooms and devices; a device command and a short spoken reply for each.
//!
//! The matcher is a closed set of requests ([`Intent`]) recognised by keywords, made
//! robust to how Whisper writes things (case, punctuation, "please", number words,
//! "turn the kitchen lights on", plural or singular). The target is a device by name
//! or alias, or a kind in a room ("the lamp in the bedroom"), the site's room when the
//! room is left out ("turn on the lights" at site `kitchen`). What it cannot
//! understand may go to an OpenAI-compatible chat model ([`ChatFallback`], off by
//! default) over plain HTTP; its answer streams in and is spoken sentence by sentence.
//!
//! # Layout
//!
//! | file | what lives there |
//! |---|---|
//! | `words.rs` | transcript → folded words; number words; spoken durations |
//! | `matcher.rs` | [`IntentMatcher`]: which request in which order, target resolution, device commands |
//! | `groups.rs` | several lights at once: a room's ("the lights in the living room"), or every one ("all the lights off") |
//! | `request_words.rs` | what the words ask for and the values in them: timers and their names, time and date, levels, volume steps, stop, next and previous track |
//! | `mishearing.rs` | misheard names read as the home's or asked back, split switch verbs asked back, whether words sound finished |
//! | `sounds.rs` | phonetic keys and edit distances: which names sound alike |
//! | `intent.rs` | [`Intent`], [`Unmatched`], [`DeviceCommand`], [`Understanding`] |
//! | `intent_name.rs` | [`Intent::name`]: the stable label of each intent, for JSON answers |
//! | `reply.rs` | the spoken reply to each intent and each problem |
//! | `timers.rs` | [`RunningTimers`]: what the matcher may know of a site's timers; lengths read aloud |
//! | `stage.rs` | [`IntentConfig`] (the builder) and [`IntentStage`], the [`alicia_pipeline::Stage`] |
//! | `chat.rs` | [`ChatFallback`] config and [`ChatClient`]: chat completions (`"stream": true`) with per-session history, behind the `llm` circuit breaker (`alicia-breaker`) with bounded retries; one client shared by clones |
//! | `stream.rs` | the answer as it arrives: server-sent events (or one JSON body), finished sentences handed on before the end |
//! | `http.rs` | a blocking HTTP/1.1 POST over `std::net::TcpStream`, the body handed on as it arrives, plain http only |
//! | `error.rs` | [`ChatError`], [`IntentError`] and their stable `error_type` labels |
//!
//! # Use
//!
//! ```
//! use alicia_home::Home;
//! use alicia_stage_intent::{Intent, IntentMatcher};
//!
//! let home = Home::from_toml(include_str!("../../../bus-config/home.toml"))?;
//! let matcher = IntentMatcher::new(&home);
//! let intent = matcher.match_text("Turn the lights on, please.", "kitchen");
//! assert_eq!(intent, Intent::TurnOn { device: "kitchen_lights".into() });
//! let command = matcher.command(&intent, "kitchen").unwrap();
//! assert_eq!(command.topic(), "alicia/devices/kitchen_lights/command");
//! assert_eq!(command.to_json(), serde_json::json!({"action": "turn_on", "device_id": "kitchen_lights"}));
//! # Ok::<(), alicia_home::HomeError>(())
//! ```

mod chat;
mod error;
mod groups;
mod http;
mod intent;
mod intent_name;
mod matcher;
mod mishearing;
mod reply;
mod request_words;
mod sounds;
mod stage;
mod stream;
mod timers;
mod words;

pub use chat::{ChatClient, ChatFallback, CHAT_BREAKER_TARGET};
pub use error::{ChatError, IntentError};
pub use intent::{Action, DeviceCommand, Intent, Quantity, Understanding, Unmatched, TIMER_COMMAND_TOPIC};
pub use matcher::IntentMatcher;
pub use reply::DIDNT_CATCH_THAT;
pub use stage::{IntentConfig, IntentStage, OutputLayout, COMMAND_OUTPUT, REPLY_OUTPUT};
pub use timers::{timer_spoken, RunningTimers, TimerLeft};

#[cfg(test)]
mod tests {
    /// The home refuses one name given to two devices by `alicia_home::spoken_key`; the
    /// matcher tells names apart by its own folded words. They must fold alike, or the
    /// home would accept two names the matcher cannot tell apart.
    #[test]
    fn the_home_and_the_matcher_fold_names_alike() {
        let names = [
            "  Kitchen   LIGHTS ",
            "Living-room lamp (big)",
            "what's 5min",
            "glass its bus iris",
            "the 50% [BLANK_AUDIO] lamps",
            "Ceiling light’s {x} 2nd",
            "?!",
        ];
        for name in names {
            let matcher_key = crate::words::words(name).into_iter().map(|w| w.folded).collect::<Vec<_>>().join(" ");
            assert_eq!(alicia_home::spoken_key(name), matcher_key, "{name:?}");
        }
    }
}
