//! Timestamps: UTC, RFC 3339 with milliseconds and `Z`, one fixed width so that
//! stored strings sort in time order.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Deserializer, Serializer};

pub type Timestamp = DateTime<Utc>;

/// Now, to the millisecond: the precision timestamps are stored with, so a
/// record compares equal to itself after a round trip through DynamoDB.
pub fn now() -> Timestamp {
    Utc::now().trunc_subsecs(3)
}

pub fn format(t: &Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses any RFC 3339 timestamp a client may send (`2027-01-01T00:00:00Z`,
/// with an offset, with or without fractions).
pub fn parse(s: &str) -> Option<Timestamp> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// `#[serde(with = "crate::time::rfc3339")]`
pub mod rfc3339 {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let s = String::deserialize(d)?;
        parse(&s).ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 timestamp: {s}")))
    }
}

/// `#[serde(with = "crate::time::rfc3339_opt")]`
pub mod rfc3339_opt {
    use super::*;

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format(t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) => parse(&s)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 timestamp: {s}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_and_sortable() {
        let a = parse("2026-01-02T03:04:05Z").unwrap();
        let b = parse("2026-01-02T03:04:05.5+00:00").unwrap();
        assert_eq!(format(&a), "2026-01-02T03:04:05.000Z");
        assert_eq!(format(&b), "2026-01-02T03:04:05.500Z");
        assert!(format(&a) < format(&b));
        assert_eq!(parse(&format(&b)), Some(b));
        assert!(parse("yesterday").is_none());
    }
}
