//! Conditional GETs (RFC 9110 §8.8.3, §13.1.2): an `ETag` on reads, and
//! `If-None-Match` answered 304 with no body when the client's copy is
//! current, so a poller spends no bandwidth (the request is still metered:
//! it was authenticated and checked like any other).
//!
//! A tag is a hash of the representation, so it changes exactly when the
//! body would. Where a body carries live figures that change on every read
//! (a key's `rate_limit_status` and its recent `usage`), the tag is weak and
//! covers the rest: two answers with the same weak tag are the same key,
//! not the same bytes, which is what `W/` says.

use lambda_http::{Body, Request, Response};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// An entity tag as sent in `ETag`: `"…"` or `W/"…"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag {
    weak: bool,
    opaque: String,
}

impl EntityTag {
    /// A strong tag: the hash of the whole body.
    pub fn strong(body: &Value) -> Self {
        EntityTag {
            weak: false,
            opaque: digest(body),
        }
    }

    /// A weak tag over a key's body without its live parts.
    pub fn of_key(body: &Value) -> Self {
        let mut stable = body.clone();
        if let Some(o) = stable.as_object_mut() {
            o.remove("rate_limit_status");
            o.remove("usage");
        }
        EntityTag {
            weak: true,
            opaque: digest(&stable),
        }
    }

    pub fn header(&self) -> String {
        if self.weak {
            format!("W/\"{}\"", self.opaque)
        } else {
            format!("\"{}\"", self.opaque)
        }
    }
}

/// 128 bits of SHA-256 of the JSON as sent (serde_json writes an object's
/// keys in a fixed order, so the same value always gives the same text).
fn digest(body: &Value) -> String {
    let hash = Sha256::digest(body.to_string().as_bytes());
    hex::encode(&hash[..16])
}

/// Whether `If-None-Match` (every such header, each a list) matches `tag`
/// by the weak comparison RFC 9110 §13.1.2 prescribes: `*` matches any
/// current representation; otherwise any listed tag whose opaque part
/// equals ours, `W/` or not. Entries that are not entity tags are ignored.
pub fn none_match(req: &Request, tag: &EntityTag) -> bool {
    req.headers()
        .get_all(http::header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| list_matches(v, tag))
}

fn list_matches(value: &str, tag: &EntityTag) -> bool {
    if value.trim() == "*" {
        return true;
    }
    split_tags(value).any(|opaque| opaque == tag.opaque)
}

/// The opaque parts of a comma-separated list of entity tags. A comma may
/// sit inside a quoted tag, so the list is read tag by tag, not split.
fn split_tags(value: &str) -> impl Iterator<Item = &str> {
    let mut rest = value;
    std::iter::from_fn(move || {
        loop {
            rest = rest.trim_start_matches([' ', '\t', ',']);
            if rest.is_empty() {
                return None;
            }
            let unweak = rest.strip_prefix("W/").unwrap_or(rest);
            match unweak
                .strip_prefix('"')
                .and_then(|s| s.find('"').map(|end| (s, end)))
            {
                Some((s, end)) => {
                    rest = &s[end + 1..];
                    return Some(&s[..end]);
                }
                // Not a tag: skip to the next comma.
                None => match rest.find(',') {
                    Some(i) => rest = &rest[i + 1..],
                    None => return None,
                },
            }
        }
    })
}

/// Puts the tag on a 200 and, where the client's copy is current, turns it
/// into a 304 with no body (and none of the body's headers).
///
/// A tagged answer invites caching, and what it says depends on who asks:
/// `private` keeps it out of shared caches (a proxy or CDN in front of the
/// API), and `Vary` names the headers that carry the key, so even a cache
/// that ignores `private` never answers one caller with another's copy.
pub fn apply(req: &Request, resp: &mut Response<Body>, tag: &EntityTag) {
    if let Ok(v) = http::HeaderValue::from_str(&tag.header()) {
        resp.headers_mut().insert(http::header::ETAG, v);
    }
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("private, no-cache"),
    );
    headers.insert(
        http::header::VARY,
        http::HeaderValue::from_static("Authorization, X-API-Key, API-Version"),
    );
    if none_match(req, tag) {
        *resp.status_mut() = http::StatusCode::NOT_MODIFIED;
        *resp.body_mut() = Body::Empty;
        resp.headers_mut().remove(http::header::CONTENT_TYPE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tag() -> EntityTag {
        EntityTag::strong(&json!({"id": "wh_1", "url": "https://a.example"}))
    }

    #[test]
    fn the_same_body_has_the_same_tag_and_another_body_another() {
        let a = json!({"id": "wh_1", "url": "https://a.example"});
        assert_eq!(EntityTag::strong(&a), tag());
        assert_ne!(EntityTag::strong(&json!({"id": "wh_2"})), tag());
        let h = tag().header();
        assert!(
            h.starts_with('"') && h.ends_with('"') && h.len() == 34,
            "{h}"
        );
    }

    #[test]
    fn a_keys_tag_is_weak_and_ignores_its_live_figures() {
        let k = json!({"id": "key_1", "name": "a", "rate_limit_status": {"n": 1}, "usage": []});
        let later =
            json!({"id": "key_1", "name": "a", "rate_limit_status": {"n": 2}, "usage": [1]});
        assert_eq!(EntityTag::of_key(&k), EntityTag::of_key(&later));
        assert!(EntityTag::of_key(&k).header().starts_with("W/\""));
        let renamed = json!({"id": "key_1", "name": "b"});
        assert_ne!(EntityTag::of_key(&k), EntityTag::of_key(&renamed));
    }

    #[test]
    fn if_none_match_uses_the_weak_comparison() {
        let t = tag();
        let o = t.opaque.clone();
        for (value, matches) in [
            (format!("\"{o}\""), true),
            (format!("W/\"{o}\""), true),
            ("*".to_string(), true),
            (format!("\"x\", W/\"y\" ,\"{o}\""), true),
            (format!("\"a,b\", \"{o}\""), true),
            (format!("junk, \"{o}\""), true),
            ("\"other\"".to_string(), false),
            (o.clone(), false),
            (format!("\"{o}"), false),
            ("".to_string(), false),
            ("W/".to_string(), false),
            ("*, \"x\"".to_string(), false),
        ] {
            assert_eq!(list_matches(&value, &t), matches, "{value:?}");
        }
    }
}
