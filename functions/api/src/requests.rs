//! Request bodies, parsed into types that can only hold valid values, so the
//! handlers never re-check them. Unknown fields are refused everywhere: a typo
//! in a field name should fail loudly, not be ignored.

use keyhub::domain::apikey::Environment;
use keyhub::domain::limits::{Limits, Plan};
use keyhub::domain::scope::Scopes;
use keyhub::domain::time::{self, Timestamp};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

const MAX_NAME: usize = 100;
const MAX_DESCRIPTION: usize = 500;
const MAX_METADATA_BYTES: usize = 4096;
const MAX_METADATA_KEYS: usize = 50;
/// Longest grace period a rotation may ask for: 30 days.
pub const MAX_GRACE_SECONDS: u64 = 30 * 86_400;
pub const DEFAULT_GRACE_SECONDS: u64 = 86_400;

fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

/// A display name: at most 100 characters, not all whitespace, one line
/// with no control characters but tab; stored trimmed.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct Name(pub String);

impl TryFrom<String> for Name {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        // The length is the client's string, before trimming, as
        // openapi.yaml's maxLength counts it.
        let t = s.trim();
        if t.is_empty() || s.chars().count() > MAX_NAME || has_control(&s) || s.contains('\n') {
            return Err(format!("must be 1 to {MAX_NAME} characters on one line"));
        }
        Ok(Name(t.to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct Description(pub String);

impl TryFrom<String> for Description {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.chars().count() > MAX_DESCRIPTION || has_control(&s) {
            return Err(format!("must be at most {MAX_DESCRIPTION} characters"));
        }
        Ok(Description(s))
    }
}

/// Free-form JSON attached to a key, bounded so that a key item stays small
/// and so that nothing in it can fail DynamoDB's own validation (which would
/// surface as a 500): object keys are non-empty, containers nest at most
/// `MAX_METADATA_DEPTH` deep (the metadata object is the first level), and
/// every number lies in DynamoDB's range. openapi.yaml states the same rules.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Map<String, Value>")]
pub struct Metadata(pub Map<String, Value>);

/// Containers (objects, arrays) nested inside each other, the metadata
/// object included; DynamoDB allows 32, a key's metadata needs far fewer.
pub const MAX_METADATA_DEPTH: usize = 3;
/// Entries of any one object or array in metadata.
const MAX_METADATA_ENTRIES: usize = 50;
const MAX_METADATA_KEY: usize = 64;
const MAX_METADATA_STRING: usize = 500;
/// DynamoDB numbers: magnitudes from 1e-130 up to (not including) 1e126.
/// Every f64 within these bounds prints with at most 17 significant digits,
/// well inside DynamoDB's 38.
const DYNAMODB_MIN_MAGNITUDE: f64 = 1e-130;
const DYNAMODB_MAX_MAGNITUDE: f64 = 1e126;

fn check_metadata_value(path: &str, v: &Value, depth: usize) -> Result<(), String> {
    let container = |len: usize| {
        if depth >= MAX_METADATA_DEPTH {
            Err(format!(
                "{path}: metadata nests objects and arrays at most {MAX_METADATA_DEPTH} deep"
            ))
        } else if len > MAX_METADATA_ENTRIES {
            Err(format!("{path}: at most {MAX_METADATA_ENTRIES} entries"))
        } else {
            Ok(())
        }
    };
    match v {
        Value::Null | Value::Bool(_) => Ok(()),
        Value::Number(n) => match n.as_f64() {
            // Integers that fit 64 bits print exactly, with at most 20 digits.
            _ if n.is_i64() || n.is_u64() => Ok(()),
            Some(f)
                if f == 0.0
                    || (DYNAMODB_MIN_MAGNITUDE..DYNAMODB_MAX_MAGNITUDE).contains(&f.abs()) =>
            {
                Ok(())
            }
            _ => Err(format!(
                "{path}: numbers must be 0 or of magnitude from 1e-130 to below 1e126"
            )),
        },
        Value::String(s) => {
            if s.chars().count() > MAX_METADATA_STRING {
                Err(format!(
                    "{path}: strings are at most {MAX_METADATA_STRING} characters"
                ))
            } else {
                Ok(())
            }
        }
        Value::Array(items) => {
            container(items.len())?;
            for (i, item) in items.iter().enumerate() {
                check_metadata_value(&format!("{path}[{i}]"), item, depth + 1)?;
            }
            Ok(())
        }
        Value::Object(m) => {
            container(m.len())?;
            check_metadata_map(path, m, depth + 1)
        }
    }
}

/// The entries of an object at `depth` (the metadata object is depth 1).
fn check_metadata_map(path: &str, m: &Map<String, Value>, depth: usize) -> Result<(), String> {
    for (k, v) in m {
        let n = k.chars().count();
        if n == 0 || n > MAX_METADATA_KEY {
            return Err(format!(
                "{path}: keys must be 1 to {MAX_METADATA_KEY} characters"
            ));
        }
        check_metadata_value(&format!("{path}.{k}"), v, depth)?;
    }
    Ok(())
}

impl TryFrom<Map<String, Value>> for Metadata {
    type Error = String;
    fn try_from(m: Map<String, Value>) -> Result<Self, String> {
        if m.len() > MAX_METADATA_KEYS {
            return Err(format!("must have at most {MAX_METADATA_KEYS} keys"));
        }
        check_metadata_map("metadata", &m, 1)?;
        if Value::Object(m.clone()).to_string().len() > MAX_METADATA_BYTES {
            return Err(format!(
                "must be at most {MAX_METADATA_BYTES} bytes as JSON"
            ));
        }
        Ok(Metadata(m))
    }
}

/// A whole number as JSON Schema counts one: `1048576` and `1048576.0`
/// alike, since a client's JSON library may write either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Whole(pub u64);

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Whole;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a whole number")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Whole, E> {
                Ok(Whole(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Whole, E> {
                u64::try_from(v)
                    .map(Whole)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Whole, E> {
                // 2^64 as f64; every integral float below it converts exactly.
                if v.fract() == 0.0 && (0.0..18_446_744_073_709_551_616.0).contains(&v) {
                    Ok(Whole(v as u64))
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Float(v), &self))
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `rate_limits` as a client writes it: whole numbers, `null` for the default.
#[derive(Debug, Default)]
struct RawLimits {
    per_minute: Option<Whole>,
    per_hour: Option<Whole>,
    per_day: Option<Whole>,
}

/// The fields of `rate_limits`, read as a field identifier so that an
/// unknown one is reported at its own path (`rate_limits.per_second`).
#[derive(Deserialize)]
#[serde(field_identifier)]
enum LimitField {
    #[serde(rename = "per_minute")]
    Minute,
    #[serde(rename = "per_hour")]
    Hour,
    #[serde(rename = "per_day")]
    Day,
}

/// An object only: serde's derived struct visitor also takes a JSON array
/// (`[null, null]` read as the three fields in order), which the schema
/// refuses and a client never means.
impl<'de> Deserialize<'de> for RawLimits {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = RawLimits;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object with per_minute, per_hour and per_day")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<RawLimits, A::Error> {
                let mut out = RawLimits::default();
                while let Some(key) = map.next_key::<LimitField>()? {
                    let slot = match key {
                        LimitField::Minute => &mut out.per_minute,
                        LimitField::Hour => &mut out.per_hour,
                        LimitField::Day => &mut out.per_day,
                    };
                    *slot = map.next_value()?;
                }
                Ok(out)
            }
        }
        d.deserialize_map(Fields)
    }
}

/// Rate-limit overrides, each between 1 and `MAX_LIMIT`.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "RawLimits")]
pub struct LimitOverrides(pub Limits);

impl TryFrom<RawLimits> for LimitOverrides {
    type Error = String;
    fn try_from(r: RawLimits) -> Result<Self, String> {
        let l = Limits {
            per_minute: r.per_minute.map(|w| w.0),
            per_hour: r.per_hour.map(|w| w.0),
            per_day: r.per_day.map(|w| w.0),
        };
        l.validate().map_err(|(_, m)| m)?;
        Ok(LimitOverrides(l))
    }
}

/// An RFC 3339 timestamp; whether it must lie in the future is the
/// handler's call, since only it knows "now".
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct When(pub Timestamp);

impl TryFrom<String> for When {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        time::parse(&s).map(When).ok_or_else(|| {
            format!("{s:?} is not an RFC 3339 timestamp such as 2027-01-31T00:00:00Z")
        })
    }
}

/// For nullable fields of an update: absent is `None`, `null` is `Some(None)`.
fn nullable<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// An optional whole number (see `Whole`): absent is `None`, `null` is not
/// a number.
fn whole<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Whole::deserialize(d).map(|w| Some(w.0))
}

/// For optional fields that openapi.yaml does not make nullable: absent is
/// `None`, and `null` is refused as the wrong type, as the schema says.
pub fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    pub name: Name,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<Description>,
    #[serde(default, deserialize_with = "present")]
    pub scopes: Option<Scopes>,
    #[serde(default, deserialize_with = "present")]
    pub environment: Option<Environment>,
    #[serde(default, deserialize_with = "present")]
    pub expires_at: Option<When>,
    #[serde(default, deserialize_with = "present")]
    pub rate_limits: Option<LimitOverrides>,
    #[serde(default, deserialize_with = "present")]
    pub metadata: Option<Metadata>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateKey {
    #[serde(default, deserialize_with = "present")]
    pub name: Option<Name>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<Description>>,
    #[serde(default, deserialize_with = "present")]
    pub is_active: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    pub scopes: Option<Scopes>,
    /// `null` returns the key to the deployment's defaults.
    #[serde(default, deserialize_with = "nullable")]
    pub rate_limits: Option<Option<LimitOverrides>>,
    #[serde(default, deserialize_with = "nullable")]
    pub expires_at: Option<Option<When>>,
    #[serde(default, deserialize_with = "nullable")]
    pub metadata: Option<Option<Metadata>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateKey {
    #[serde(default, deserialize_with = "whole")]
    pub grace_period_seconds: Option<u64>,
}

/// Most keys one bulk request may name.
pub const MAX_BULK_IDS: usize = 100;

/// `POST /api/v1/api-keys/bulk`: one action on up to 100 keys.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BulkKeys {
    pub action: BulkAction,
    pub ids: BulkIds,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BulkAction {
    Deactivate,
    Delete,
}

impl BulkAction {
    pub fn as_str(self) -> &'static str {
        match self {
            BulkAction::Deactivate => "deactivate",
            BulkAction::Delete => "delete",
        }
    }
}

/// An id with a key id's shape (`key_` and 22 base62 characters), the
/// pattern openapi.yaml gives. One of that shape that no key can have is
/// answered per key as not found, as a single request's path is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct BulkId(pub String);

impl TryFrom<String> for BulkId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let digits = keyhub::domain::pepper::KEY_ID_DIGITS;
        match s.strip_prefix("key_") {
            Some(d) if d.len() == digits && d.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                Ok(BulkId(s))
            }
            _ => Err(format!(
                "must be a key id: key_ and {digits} base62 characters"
            )),
        }
    }
}

/// 1 to `MAX_BULK_IDS` ids, each once: a repeated id is refused rather than
/// folded, so that every id sent has exactly one result, at its own index.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<BulkId>")]
pub struct BulkIds(pub Vec<String>);

impl TryFrom<Vec<BulkId>> for BulkIds {
    type Error = String;
    fn try_from(ids: Vec<BulkId>) -> Result<Self, String> {
        if ids.is_empty() || ids.len() > MAX_BULK_IDS {
            return Err(format!(
                "must hold 1 to {MAX_BULK_IDS} ids, not {}",
                ids.len()
            ));
        }
        let mut seen = std::collections::HashMap::new();
        for (i, id) in ids.iter().enumerate() {
            if let Some(first) = seen.insert(id.0.as_str(), i) {
                return Err(format!("ids[{i}] repeats ids[{first}]: name each key once"));
            }
        }
        Ok(BulkIds(ids.into_iter().map(|id| id.0).collect()))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    pub name: Name,
    #[serde(default, deserialize_with = "present")]
    pub plan: Option<Plan>,
    /// Scopes of the account's first key; by default every scope but
    /// `accounts:write`.
    #[serde(default, deserialize_with = "present")]
    pub scopes: Option<Scopes>,
    #[serde(default, deserialize_with = "present")]
    pub key_name: Option<Name>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyhub::ApiError;
    use keyhub::http::request::from_json;

    fn reason(e: ApiError) -> (Option<String>, &'static str) {
        match e {
            ApiError::InvalidRequest { field, reason, .. } => (field, reason),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bulk_body_names_1_to_100_distinct_key_ids() {
        let id = |n: usize| format!("key_{n:0>22}");
        let body = |action: &str, ids: Vec<String>| {
            serde_json::to_vec(&serde_json::json!({"action": action, "ids": ids})).unwrap()
        };
        let ok: BulkKeys = from_json(&body("delete", vec![id(1), id(2)])).unwrap();
        assert_eq!(ok.action, BulkAction::Delete);
        assert_eq!(ok.ids.0, vec![id(1), id(2)]);
        let full: BulkKeys = from_json(&body("deactivate", (0..100).map(id).collect())).unwrap();
        assert_eq!(full.ids.0.len(), 100);
        for (bytes, field, why) in [
            (
                body("delete", (0..101).map(id).collect()),
                "ids",
                "invalid_value",
            ),
            (body("delete", vec![]), "ids", "invalid_value"),
            (
                body("delete", vec![id(1), id(2), id(1)]),
                "ids",
                "invalid_value",
            ),
            (
                body("delete", vec![id(1), "key_short".into()]),
                "ids[1]",
                "invalid_value",
            ),
            (
                body("delete", vec![format!("wh_{:0>22}", 1)]),
                "ids[0]",
                "invalid_value",
            ),
            (body("revive", vec![id(1)]), "action", "invalid_value"),
            (
                br#"{"action": "delete", "ids": "key_1"}"#.to_vec(),
                "ids",
                "invalid_type",
            ),
            (
                br#"{"action": "delete"}"#.to_vec(),
                "ids",
                "required_field_missing",
            ),
            (
                br#"{"all": true, "action": "delete", "ids": []}"#.to_vec(),
                "all",
                "unknown_field",
            ),
        ] {
            let e = from_json::<BulkKeys>(&bytes).unwrap_err();
            assert_eq!(
                reason(e),
                (Some(field.to_string()), why),
                "{}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }

    #[test]
    fn create_key_fields_are_checked() {
        let ok: CreateKey =
            from_json(br#"{"name": "  ci  ", "scopes": ["keys:read"], "environment": "test"}"#)
                .unwrap();
        assert_eq!(ok.name.0, "ci");
        assert_eq!(ok.environment, Some(Environment::Test));
        for (body, field, why) in [
            (r#"{"name": ""}"#, "name", "invalid_value"),
            (
                r#"{"name": "a", "environment": "prod"}"#,
                "environment",
                "invalid_value",
            ),
            (
                r#"{"name": "a", "scopes": ["Keys"]}"#,
                "scopes[0]",
                "invalid_value",
            ),
            (
                r#"{"name": "a", "scopes": "keys:read"}"#,
                "scopes",
                "invalid_type",
            ),
            (
                r#"{"name": "a", "expires_at": "tomorrow"}"#,
                "expires_at",
                "invalid_value",
            ),
            (
                r#"{"name": "a", "rate_limits": {"per_minute": 0}}"#,
                "rate_limits",
                "invalid_value",
            ),
            (
                r#"{"name": "a", "rate_limits": {"per_second": 5}}"#,
                "rate_limits.per_second",
                "unknown_field",
            ),
            (
                r#"{"name": "a", "rate_limits": [null, null]}"#,
                "rate_limits",
                "invalid_type",
            ),
            (
                r#"{"name": "a", "metadata": [1]}"#,
                "metadata",
                "invalid_type",
            ),
            (r#"{"name": "a", "owner": "me"}"#, "owner", "unknown_field"),
        ] {
            let e = from_json::<CreateKey>(body.as_bytes()).unwrap_err();
            assert_eq!(reason(e), (Some(field.to_string()), why), "{body}");
        }
    }

    #[test]
    fn null_is_refused_where_the_schema_does_not_allow_it() {
        for (body, field) in [
            r#"{"name": "a", "metadata": null}"#,
            r#"{"name": "a", "scopes": null}"#,
            r#"{"name": "a", "description": null}"#,
        ]
        .iter()
        .zip(["metadata", "scopes", "description"])
        {
            let e = from_json::<CreateKey>(body.as_bytes()).unwrap_err();
            assert_eq!(reason(e).0.as_deref(), Some(field), "{body}");
        }
        let e = from_json::<RotateKey>(br#"{"grace_period_seconds": null}"#).unwrap_err();
        assert_eq!(reason(e).0.as_deref(), Some("grace_period_seconds"));
        let e = from_json::<UpdateWebhook>(br#"{"is_active": null}"#).unwrap_err();
        assert_eq!(reason(e).0.as_deref(), Some("is_active"));
        // Nullable in an update: null clears.
        let u = from_json::<UpdateKey>(br#"{"metadata": null}"#).unwrap();
        assert_eq!(u.metadata.map(|m| m.is_none()), Some(true));
        assert!(
            from_json::<RotateKey>(b"{}")
                .unwrap()
                .grace_period_seconds
                .is_none()
        );
    }

    #[test]
    fn oversized_metadata_is_refused() {
        let big = format!(
            r#"{{"name": "a", "metadata": {{"k": "{}"}}}}"#,
            "x".repeat(5000)
        );
        let e = from_json::<CreateKey>(big.as_bytes()).unwrap_err();
        assert_eq!(reason(e).0.as_deref(), Some("metadata"));
    }

    #[test]
    fn updates_tell_null_from_absent() {
        let u: UpdateKey = from_json(br#"{"description": null, "expires_at": null}"#).unwrap();
        assert_eq!(u.description, Some(None));
        assert!(matches!(u.expires_at, Some(None)));
        assert!(u.name.is_none() && u.metadata.is_none());
        let u: UpdateKey = from_json(br#"{"description": "d"}"#).unwrap();
        assert_eq!(u.description, Some(Some(Description("d".into()))));
    }
}

/// Event types an endpoint subscribes to: known types or `*`, at least one.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct EventTypes(pub Vec<String>);

impl TryFrom<Vec<String>> for EventTypes {
    type Error = String;
    fn try_from(mut v: Vec<String>) -> Result<Self, String> {
        v.sort();
        v.dedup();
        if v.is_empty() {
            return Err("subscribe to at least one event type (or \"*\")".into());
        }
        if let Some(bad) = v
            .iter()
            .find(|e| *e != "*" && !keyhub::domain::events::EVENT_TYPES.contains(&e.as_str()))
        {
            return Err(format!(
                "unknown event type {bad:?}; known: {}",
                keyhub::domain::events::EVENT_TYPES.join(", ")
            ));
        }
        Ok(EventTypes(v))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    pub url: String,
    pub events: EventTypes,
    #[serde(default, deserialize_with = "present")]
    pub description: Option<Description>,
    #[serde(default, deserialize_with = "present")]
    pub is_active: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateWebhook {
    #[serde(default, deserialize_with = "present")]
    pub url: Option<String>,
    #[serde(default, deserialize_with = "present")]
    pub events: Option<EventTypes>,
    #[serde(default, deserialize_with = "nullable")]
    pub description: Option<Option<Description>>,
    #[serde(default, deserialize_with = "present")]
    pub is_active: Option<bool>,
}
