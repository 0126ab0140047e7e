//! The one timestamp spelling the bus emits: RFC 3339 in UTC with a `Z`.
//!
//! chrono's own serde format is close but not specified anywhere we control, and
//! peers (the seeds' Python services, dashboards) compare these strings, so the
//! format is pinned here and shared by the envelope and the health payloads.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// Formats `at` as RFC 3339 UTC, e.g. `2025-01-08T14:30:00.123Z`.
///
/// `AutoSi` prints as many fractional digits as the value needs (none, 3, 6 or
/// 9), so a decoded timestamp re-encodes without losing precision.
pub fn format(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// Parses any RFC 3339 timestamp (any offset) and converts it to UTC.
pub fn parse(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).map(|at| at.with_timezone(&Utc))
}

/// `#[serde(with = "crate::rfc3339")]` support.
pub(crate) fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(at))
}

/// `#[serde(with = "crate::rfc3339")]` support.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn emits_utc_with_z_and_only_needed_digits() {
        let at = Utc.with_ymd_and_hms(2025, 1, 8, 14, 30, 0).unwrap();
        assert_eq!(format(&at), "2025-01-08T14:30:00Z");
        let at = at + chrono::Duration::milliseconds(120);
        assert_eq!(format(&at), "2025-01-08T14:30:00.120Z");
    }

    #[test]
    fn parses_offsets_into_utc() {
        let at = parse("2025-01-08T16:30:00.000+02:00").unwrap();
        assert_eq!(format(&at), "2025-01-08T14:30:00Z");
    }

    #[test]
    fn refuses_non_rfc3339() {
        assert!(parse("2025-01-08 14:30:00").is_err());
        assert!(parse("1736346600").is_err());
        assert!(parse("2025-01-08T14:30:00").is_err(), "an offset is required");
    }
}
