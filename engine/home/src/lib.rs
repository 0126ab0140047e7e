//! The home: its rooms, devices and the sites with a satellite, as written in
//! `bus-config/home.toml`, validated with every problem named by its path. One model
//! shared by every user of the home: the intent stage's matcher, the voice bus (sites
//! and their speakers), Whisper's prompt and loadgen's generated homes.
//!
//! # Layout
//!
//! | file | what lives there |
//! |---|---|
//! | `home.rs` | [`Home`], [`Room`], [`Device`], [`DeviceKind`], [`Site`]; loading, validation ([`HomeError`], [`HomeProblem`]) and Whisper's [`Home::vocabulary_prompt`] |
//! | `spoken.rs` | [`spoken_key`]: when two names are the same thing said (one name may not be given to two devices) |
//!
//! # Use
//!
//! ```
//! use alicia_home::{DeviceKind, Home};
//!
//! let home = Home::from_toml(include_str!("../../../bus-config/home.toml"))?;
//! assert_eq!(home.device("kitchen_lights").unwrap().kind, DeviceKind::Light);
//! assert_eq!(home.sites["kitchen"].speaker.as_deref(), Some("kitchen_speaker"));
//! # Ok::<(), alicia_home::HomeError>(())
//! ```

mod home;
mod spoken;

pub use home::{is_id, Device, DeviceKind, Home, HomeError, HomeProblem, Room, Site};
pub use spoken::{fold_plural, spoken_key, spoken_words};
