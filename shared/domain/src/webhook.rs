//! Webhook signing (Standard Webhooks) and the delivery rules, as pure
//! functions: the secret format, the signatures, the retry schedule and what
//! an answer from a receiver means.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

pub const SECRET_PREFIX: &str = "whsec_";

/// A signing secret: `whsec_` and the base64 of the key bytes.
#[derive(Clone)]
pub struct SigningSecret {
    key: Vec<u8>,
    /// Keyed once at construction.
    mac: HmacSha256,
}

impl PartialEq for SigningSecret {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(redacted)")
    }
}

impl SigningSecret {
    /// 32 bytes from the OS random source.
    pub fn generate() -> Option<Self> {
        let mut key = vec![0u8; 32];
        getrandom::fill(&mut key).ok()?;
        Self::from_bytes(key)
    }

    pub fn parse(s: &str) -> Option<Self> {
        let b64 = s.strip_prefix(SECRET_PREFIX)?;
        Self::from_bytes(STANDARD.decode(b64).ok()?)
    }

    pub fn from_bytes(key: Vec<u8>) -> Option<Self> {
        if key.is_empty() {
            return None;
        }
        let mac = HmacSha256::new_from_slice(&key).ok()?;
        Some(SigningSecret { key, mac })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.key
    }

    /// `whsec_…`, shown to the user once.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }

    /// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`
    pub fn sign_v1(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }

    /// `sha256=<hex HMAC-SHA256(key, body)>`
    pub fn x_signature(&self, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }
}

/// The `webhook-signature` header: the current secret's signature, then the
/// previous secret's while it is still honoured after a rotation.
pub fn signature_header(
    current: &SigningSecret,
    previous: Option<&SigningSecret>,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let mut sigs = vec![current.sign_v1(id, timestamp, body)];
    if let Some(p) = previous {
        sigs.push(p.sign_v1(id, timestamp, body));
    }
    sigs.join(" ")
}

/// Delays before retries 1 to 5: 5 s, 5 min, 30 min, 2 h, 5 h.
pub const SCHEDULE: [Duration; 5] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
];

/// Attempts in all: the first and five retries.
pub const MAX_ATTEMPTS: u32 = 1 + SCHEDULE.len() as u32;

/// SQS cannot hide a message for longer than 12 hours.
pub const MAX_DELAY: Duration = Duration::from_secs(12 * 3600);

/// The delay after failed attempt `attempt` (1-based), or `None` when it
/// was the last. `jitter` in [-1, 1] moves it by up to ±20%; `scale` shrinks
/// the whole schedule (tests).
pub fn retry_delay(attempt: u32, jitter: f64, scale: f64) -> Option<Duration> {
    let base = SCHEDULE.get(attempt.checked_sub(1)? as usize)?;
    let factor = 1.0 + 0.2 * jitter.clamp(-1.0, 1.0);
    Some(base.mul_f64((factor * scale).max(0.0)))
}

/// A uniformly random jitter in [-1, 1].
pub fn jitter() -> f64 {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    (u32::from_le_bytes(b) as f64 / u32::MAX as f64) * 2.0 - 1.0
}

/// What a receiver's answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Delivered,
    /// Try again; `after` is the receiver's `Retry-After` if it sent one we
    /// honour (429 and 503 only).
    Retry {
        after: Option<Duration>,
    },
    /// 410 Gone: the receiver asks never to be called again.
    Gone,
}

/// Judges an attempt: `status` is `None` when no answer came (refused, timed
/// out, no such host).
pub fn judge(
    status: Option<u16>,
    retry_after: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> Verdict {
    match status {
        Some(200..=299) => Verdict::Delivered,
        Some(410) => Verdict::Gone,
        Some(429 | 503) => Verdict::Retry {
            after: retry_after.and_then(|v| parse_retry_after(v, now)),
        },
        _ => Verdict::Retry { after: None },
    }
}

/// `Retry-After` as seconds or an HTTP date, at least 1 s and at most
/// `MAX_DELAY`.
pub fn parse_retry_after(v: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    let v = v.trim();
    let secs = match v.parse::<u64>() {
        Ok(s) => s,
        Err(_) => {
            let at = chrono::DateTime::parse_from_rfc2822(v).ok()?;
            (at.with_timezone(&chrono::Utc) - now).num_seconds().max(0) as u64
        }
    };
    Some(Duration::from_secs(secs.clamp(1, MAX_DELAY.as_secs())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_webhooks_test_vector() {
        let secret = SigningSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let body = br#"{"email":"test@example.com","username":"test_user"}"#;
        assert_eq!(
            secret.sign_v1("msg_27UH4WbU6Z5A5EzD8u03UvzRbpk", 1649367553, body),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn x_signature_is_hex_hmac_of_the_body() {
        let secret = SigningSecret::from_bytes(b"key".to_vec()).unwrap();
        // HMAC-SHA256("key", "The quick brown fox jumps over the lazy dog")
        assert_eq!(
            secret.x_signature(b"The quick brown fox jumps over the lazy dog"),
            "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
    }

    #[test]
    fn secrets_round_trip_and_both_sign_after_a_rotation() {
        let a = SigningSecret::generate().unwrap();
        let b = SigningSecret::generate().unwrap();
        assert_eq!(SigningSecret::parse(&a.expose()), Some(a.clone()));
        assert!(a.expose().starts_with("whsec_"));
        let h = signature_header(&b, Some(&a), "msg_1", 5, b"{}");
        let parts: Vec<&str> = h.split(' ').collect();
        assert_eq!(
            parts,
            vec![b.sign_v1("msg_1", 5, b"{}"), a.sign_v1("msg_1", 5, b"{}")]
        );
        assert_eq!(SigningSecret::parse("whsec_"), None);
        assert_eq!(SigningSecret::parse("nope"), None);
    }

    #[test]
    fn the_schedule_with_jitter() {
        assert_eq!(retry_delay(1, 0.0, 1.0), Some(Duration::from_secs(5)));
        assert_eq!(
            retry_delay(5, 0.0, 1.0),
            Some(Duration::from_secs(5 * 3600))
        );
        assert_eq!(retry_delay(6, 0.0, 1.0), None);
        assert_eq!(retry_delay(0, 0.0, 1.0), None);
        assert_eq!(retry_delay(2, 1.0, 1.0), Some(Duration::from_secs(360)));
        assert_eq!(retry_delay(2, -1.0, 1.0), Some(Duration::from_secs(240)));
        assert_eq!(retry_delay(2, 0.0, 0.01), Some(Duration::from_secs(3)));
        for _ in 0..1000 {
            let j = jitter();
            assert!((-1.0..=1.0).contains(&j));
        }
        // Growing, whatever the jitter.
        for a in 1..5 {
            assert!(retry_delay(a, 1.0, 1.0) < retry_delay(a + 1, -1.0, 1.0));
        }
    }

    #[test]
    fn verdicts() {
        let now = chrono::Utc::now();
        assert_eq!(judge(Some(204), None, now), Verdict::Delivered);
        assert_eq!(judge(Some(410), None, now), Verdict::Gone);
        assert_eq!(judge(Some(301), None, now), Verdict::Retry { after: None });
        assert_eq!(judge(None, None, now), Verdict::Retry { after: None });
        assert_eq!(
            judge(Some(500), Some("60"), now),
            Verdict::Retry { after: None }
        );
        assert_eq!(
            judge(Some(429), Some("60"), now),
            Verdict::Retry {
                after: Some(Duration::from_secs(60))
            }
        );
        let later = (now + chrono::Duration::seconds(120)).to_rfc2822();
        let Verdict::Retry { after: Some(d) } = judge(Some(503), Some(&later), now) else {
            panic!()
        };
        assert!((118..=120).contains(&d.as_secs()));
        assert_eq!(parse_retry_after("999999", now), Some(MAX_DELAY));
        assert_eq!(parse_retry_after("0", now), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}

/// A webhook endpoint of an account (where it is stored is the store's
/// business: `keyhub::aws::store`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub account_id: String,
    pub url: String,
    pub events: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub is_active: bool,
    /// The signing secret, sealed (see `sealed`).
    pub secret: String,
    /// The secret before the last rotation, honoured until
    /// `previous_secret_expires_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<String>,
    #[serde(
        default,
        with = "crate::time::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub previous_secret_expires_at: Option<crate::time::Timestamp>,
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: crate::time::Timestamp,
    #[serde(with = "crate::time::rfc3339")]
    pub updated_at: crate::time::Timestamp,
    /// When the current run of failed attempts began.
    #[serde(
        default,
        with = "crate::time::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub failing_since: Option<crate::time::Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
}

impl Endpoint {
    /// Whether it takes events of this type (`*` takes all).
    pub fn wants(&self, event: &str) -> bool {
        self.events.iter().any(|e| e == "*" || e == event)
    }

    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "url": self.url,
            "events": self.events,
            "description": self.description,
            "is_active": self.is_active,
            "disabled_reason": self.disabled_reason,
            "failing_since": self.failing_since.as_ref().map(crate::time::format),
            "created_at": crate::time::format(&self.created_at),
            "updated_at": crate::time::format(&self.updated_at),
        })
    }
}

/// One attempt to deliver.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Attempt {
    pub attempt: u32,
    #[serde(with = "crate::time::rfc3339")]
    pub at: crate::time::Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    pub latency_ms: f64,
    /// The start of the response body (at most `RESPONSE_KEPT` bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(
        default,
        with = "crate::time::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub next_attempt_at: Option<crate::time::Timestamp>,
}

/// Bytes of a response body kept in the delivery log.
pub const RESPONSE_KEPT: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
    /// The endpoint was deleted or deactivated before delivery.
    Canceled,
}

/// One event for one endpoint, with every attempt.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    pub id: String,
    pub endpoint_id: String,
    pub account_id: String,
    pub event_id: String,
    pub event_type: String,
    /// The event body, exactly as signed and sent.
    pub payload: String,
    pub status: DeliveryStatus,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    #[serde(with = "crate::time::rfc3339")]
    pub created_at: crate::time::Timestamp,
    #[serde(with = "crate::time::rfc3339")]
    pub updated_at: crate::time::Timestamp,
    #[serde(
        default,
        with = "crate::time::rfc3339_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub next_attempt_at: Option<crate::time::Timestamp>,
    /// The token of the one queue message that carries this delivery's
    /// retries. An event handled twice, or an orphaned message, may queue
    /// a second retry message; the first to claim the delivery wins and any
    /// other is dropped, so a delivery never runs on two schedules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_chain: Option<String>,
}

impl Delivery {
    /// A delivery's id is fixed by its event and endpoint, so handling the
    /// same event twice finds the same delivery; it sorts by the event's time.
    pub fn id_for(event: &crate::events::Event, endpoint_id: &str) -> String {
        use sha2::Digest;
        let h = Sha256::digest(format!("{}|{endpoint_id}", event.id).as_bytes());
        let mut head = [0u8; 16];
        head.copy_from_slice(&h[..16]);
        let millis = event.timestamp.timestamp_millis().max(0) as u128;
        format!(
            "dlv_{}{}",
            crate::base62::encode_fixed(millis, 8),
            &crate::base62::encode_fixed(u128::from_be_bytes(head), 22)[..14]
        )
    }

    pub fn new(
        event: &crate::events::Event,
        endpoint: &Endpoint,
        now: crate::time::Timestamp,
    ) -> Self {
        let id = Self::id_for(event, &endpoint.id);
        Delivery {
            id,
            endpoint_id: endpoint.id.clone(),
            account_id: endpoint.account_id.clone(),
            event_id: event.id.clone(),
            event_type: event.event.as_str().to_string(),
            payload: event.body(),
            status: DeliveryStatus::Pending,
            attempts: Vec::new(),
            created_at: now,
            updated_at: now,
            next_attempt_at: Some(now),
            retry_chain: None,
        }
    }

    pub fn view(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id,
            "endpoint_id": self.endpoint_id,
            "event_id": self.event_id,
            "event": self.event_type,
            "status": self.status,
            "attempts": self.attempts.iter().map(|a| serde_json::json!({
                "attempt": a.attempt,
                "attempted_at": crate::time::format(&a.at),
                "status_code": a.status_code,
                "latency_ms": (a.latency_ms * 10.0).round() / 10.0,
                "response": a.response,
                "error": a.error,
                "next_attempt_at": a.next_attempt_at.as_ref().map(crate::time::format),
            })).collect::<Vec<_>>(),
            "next_attempt_at": self.next_attempt_at.as_ref().map(crate::time::format),
            "created_at": crate::time::format(&self.created_at),
            "updated_at": crate::time::format(&self.updated_at),
            "payload": serde_json::from_str::<serde_json::Value>(&self.payload).unwrap_or(serde_json::Value::Null),
        })
    }
}
