//! Date-based API versions: the registry of every version this API serves,
//! the `API-Version` request header that picks one, and the headers every
//! answer carries about it. A breaking change gets a new dated entry here,
//! and the code that differs asks `Version::at_least` (or matches on the
//! date), so old and new are served side by side until the old one's sunset.

use chrono::{NaiveDate, TimeZone, Utc};
use keyhub::ApiError;
use lambda_http::{Body, Request, Response};

pub const HEADER: &str = "api-version";

/// One version: its date, and when it stops being served, if announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// `YYYY-MM-DD`.
    pub date: &'static str,
    pub retirement: Option<Retirement>,
}

/// A retired version still answers until `sunset`, with `Deprecation` and
/// `Sunset` headers (RFC 9745, RFC 8594) saying so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retirement {
    /// When it was deprecated (`YYYY-MM-DD`).
    pub deprecated: &'static str,
    /// The last day it is served (`YYYY-MM-DD`, through 23:59:59 UTC);
    /// at least six months after `deprecated`, per the README's policy.
    pub sunset: &'static str,
}

/// Every version served, oldest first; the last is the current one, which
/// a request without `API-Version` gets. See CHANGELOG.md.
pub const REGISTRY: &[Version] = &[Version {
    date: "2026-12-01",
    retirement: None,
}];

impl Version {
    /// Whether this version is `date` or newer: how code that changed in
    /// `date` tells which behaviour a request asked for.
    pub fn at_least(&self, date: &str) -> bool {
        self.date >= date
    }
}

/// The current version of a registry (its newest).
pub fn current(registry: &'static [Version]) -> Option<&'static Version> {
    registry.last()
}

/// The version a request asks for: the current one without the header; an
/// exact date of the registry otherwise. Anything else is the contract's
/// 400 `invalid_request` on the `API-Version` header.
pub fn requested(
    registry: &'static [Version],
    req: &Request,
) -> Result<&'static Version, ApiError> {
    let bad =
        |reason: &'static str, message: String| ApiError::invalid("API-Version", reason, message);
    let known = || {
        registry
            .iter()
            .map(|v| v.date)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(value) = req.headers().get(HEADER) else {
        return current(registry).ok_or_else(|| ApiError::internal("no API version registered"));
    };
    let text = value.to_str().unwrap_or("").trim();
    if NaiveDate::parse_from_str(text, "%Y-%m-%d").is_err() || text.len() != 10 {
        return Err(bad(
            "invalid_value",
            format!(
                "API-Version must be a date, YYYY-MM-DD, of a version: {}",
                known()
            ),
        ));
    }
    registry.iter().find(|v| v.date == text).ok_or_else(|| {
        bad(
            "invalid_value",
            format!(
                "API-Version {text} is not a version of this API: {}",
                known()
            ),
        )
    })
}

/// The version's headers on an answer: `API-Version` always, and
/// `Deprecation` and `Sunset` for a retired version.
pub fn stamp(resp: &mut Response<Body>, version: &Version) {
    let headers = resp.headers_mut();
    headers.insert(HEADER, http::HeaderValue::from_static(version.date));
    if let Some(r) = version.retirement {
        if let Some(at) = day_start(r.deprecated)
            && let Ok(v) = http::HeaderValue::from_str(&format!("@{}", at.timestamp()))
        {
            headers.insert("deprecation", v);
        }
        if let Some(end) = day_start(r.sunset).map(|d| d + chrono::Duration::seconds(86_399)) {
            let date = end.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
            if let Ok(v) = http::HeaderValue::from_str(&date) {
                headers.insert("sunset", v);
            }
        }
    }
}

fn day_start(date: &str) -> Option<chrono::DateTime<Utc>> {
    let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
    Utc.from_local_datetime(&d.and_hms_opt(0, 0, 0)?).single()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WITH_RETIRED: &[Version] = &[
        Version {
            date: "2025-06-01",
            retirement: Some(Retirement {
                deprecated: "2026-12-01",
                sunset: "2027-12-01",
            }),
        },
        Version {
            date: "2026-12-01",
            retirement: None,
        },
    ];

    fn req(version: Option<&str>) -> Request {
        let mut b = http::Request::builder();
        if let Some(v) = version {
            b = b.header("API-Version", v);
        }
        b.body(Body::Empty).unwrap()
    }

    fn field_and_reason(e: ApiError) -> (Option<String>, String) {
        match e {
            ApiError::InvalidRequest { field, reason, .. } => (field, reason.to_string()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_registry_is_dated_oldest_first_and_retirements_give_six_months() {
        for r in [REGISTRY, WITH_RETIRED] {
            for w in r.windows(2) {
                assert!(w[0].date < w[1].date, "{w:?}");
            }
            for v in r {
                assert!(day_start(v.date).is_some(), "{v:?}");
                if let Some(ret) = v.retirement {
                    let (d, s) = (
                        day_start(ret.deprecated).unwrap(),
                        day_start(ret.sunset).unwrap(),
                    );
                    assert!(s - d >= chrono::Duration::days(182), "{v:?}");
                }
            }
            assert!(current(r).unwrap().retirement.is_none());
        }
    }

    #[test]
    fn no_header_is_the_current_version_and_a_registered_date_is_itself() {
        assert_eq!(
            requested(WITH_RETIRED, &req(None)).unwrap().date,
            "2026-12-01"
        );
        assert_eq!(
            requested(WITH_RETIRED, &req(Some("2025-06-01")))
                .unwrap()
                .date,
            "2025-06-01"
        );
        assert!(
            requested(WITH_RETIRED, &req(Some("2025-06-01")))
                .unwrap()
                .at_least("2025-01-01")
        );
        assert!(
            !requested(WITH_RETIRED, &req(Some("2025-06-01")))
                .unwrap()
                .at_least("2026-12-01")
        );
    }

    #[test]
    fn unknown_or_malformed_versions_are_invalid_requests_on_the_header() {
        for bad in [
            "2024-01-01",
            "2026-12-1",
            "2026-13-01",
            "yesterday",
            "",
            "2026-12-01T00:00:00Z",
        ] {
            let (field, reason) =
                field_and_reason(requested(WITH_RETIRED, &req(Some(bad))).unwrap_err());
            assert_eq!(field.as_deref(), Some("API-Version"), "{bad:?}");
            assert_eq!(reason, "invalid_value", "{bad:?}");
        }
    }

    #[test]
    fn a_retired_version_says_when_it_was_deprecated_and_when_it_ends() {
        let mut resp = Response::new(Body::Empty);
        stamp(&mut resp, &WITH_RETIRED[0]);
        let h = resp.headers();
        assert_eq!(h["api-version"], "2025-06-01");
        // 2026-12-01T00:00:00Z
        assert_eq!(h["deprecation"], "@1796083200");
        assert_eq!(h["sunset"], "Wed, 01 Dec 2027 23:59:59 GMT");

        let mut resp = Response::new(Body::Empty);
        stamp(&mut resp, &WITH_RETIRED[1]);
        assert_eq!(resp.headers()["api-version"], "2026-12-01");
        assert!(resp.headers().get("deprecation").is_none());
        assert!(resp.headers().get("sunset").is_none());
    }
}
