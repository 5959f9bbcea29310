//! API Gateway access-log lines: the format the stage writes them in
//! (`FORMAT`, which template.yaml's `AccessLogSetting` carries verbatim, as a
//! test checks), how API Gateway fills it in (`render`, which the local
//! gateway uses so that its lines are the ones AWS writes), and how a line
//! becomes a usage record (`AccessLine::parse`, `AccessLine::usage`).
//!
//! Usage from the access log is what makes a backend in any language
//! metered with no code of its own: the authorizer's context (key id,
//! account) is in every line of a request it let through.
//!
//! Every value is quoted: API Gateway writes `-` for a variable with no
//! value (no authorizer, no error), which unquoted would break the JSON.

use serde::Deserialize;

use crate::apikey::Environment;
use crate::time::Timestamp;
use crate::usage::UsageRecord;

/// The stage's access-log format: one JSON object per request.
pub const FORMAT: &str = concat!(
    r#"{"requestId":"$context.requestId","#,
    r#""keyId":"$context.authorizer.key_id","#,
    r#""accountId":"$context.authorizer.account_id","#,
    r#""environment":"$context.authorizer.environment","#,
    r#""resourcePath":"$context.resourcePath","#,
    r#""httpMethod":"$context.httpMethod","#,
    r#""status":"$context.status","#,
    r#""responseLatency":"$context.responseLatency","#,
    r#""sourceIp":"$context.identity.sourceIp","#,
    r#""requestTimeEpoch":"$context.requestTimeEpoch","#,
    r#""responseType":"$context.error.responseType"}"#
);

/// The gateway responses that mean the authorizer refused the request (or
/// could not decide): not usage of the key, even when the context names
/// one (a Deny for a missing scope carries the key's id). A 401 or 403 of
/// them that names a key is counted as a failed attempt of it.
const REFUSALS: &[&str] = &[
    "UNAUTHORIZED",
    "ACCESS_DENIED",
    "AUTHORIZER_FAILURE",
    "AUTHORIZER_CONFIGURATION_ERROR",
    "MISSING_AUTHENTICATION_TOKEN",
];

/// Fills `format` in as API Gateway does: each `$context.name` is replaced
/// by `value(name)` (without the `$context.` prefix), or `-` when it has
/// none. Values are escaped for a JSON string, so a line stays one JSON
/// object whatever a value holds.
pub fn render(format: &str, mut value: impl FnMut(&str) -> Option<String>) -> String {
    const PREFIX: &str = "$context.";
    let mut out = String::with_capacity(format.len() * 2);
    let mut rest = format;
    while let Some(at) = rest.find(PREFIX) {
        out.push_str(&rest[..at]);
        let after = &rest[at + PREFIX.len()..];
        let len = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
            .unwrap_or(after.len());
        let name = after[..len].trim_end_matches('.');
        match value(name).filter(|v| !v.is_empty()) {
            Some(v) => out.push_str(&escape(&v)),
            None => out.push('-'),
        }
        rest = &after[name.len()..];
    }
    out.push_str(rest);
    out
}

/// The variables a format names (`requestId`, `authorizer.key_id`, ...).
pub fn variables(format: &str) -> Vec<String> {
    let mut names = Vec::new();
    render(format, |name| {
        names.push(name.to_string());
        None
    });
    names
}

fn escape(v: &str) -> String {
    let quoted = serde_json::Value::from(v).to_string();
    quoted[1..quoted.len() - 1].to_string()
}

/// One line as written, every value a string (`-` for none).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    request_id: String,
    key_id: String,
    account_id: String,
    /// Absent from lines written before sandbox keys.
    #[serde(default)]
    environment: String,
    resource_path: String,
    http_method: String,
    status: String,
    response_latency: String,
    source_ip: String,
    request_time_epoch: String,
    response_type: String,
}

/// A parsed access-log line.
#[derive(Debug, Clone, PartialEq)]
pub struct AccessLine {
    pub request_id: String,
    /// The authorizer's context; `None` where no authorizer ran or it
    /// identified no key (a 401 for a key that did not parse).
    pub key_id: Option<String>,
    pub account_id: Option<String>,
    /// The key's environment, from the authorizer's context (`live` when
    /// the line names none).
    pub environment: Environment,
    /// The resource path (`/api/v1/api-keys/{id}`); `None` when no route
    /// matched.
    pub route: Option<String>,
    pub method: String,
    pub status: u16,
    pub latency_ms: f64,
    pub source_ip: Option<String>,
    pub time: Timestamp,
    /// The gateway response API Gateway answered with, if it answered
    /// itself (`UNAUTHORIZED`, `ACCESS_DENIED`, `THROTTLED`, ...).
    pub response_type: Option<String>,
}

fn present(v: String) -> Option<String> {
    (!v.is_empty() && v != "-").then_some(v)
}

impl AccessLine {
    /// Parses a line written in `FORMAT`. Anything else (another format, a
    /// truncated line, a status that is not a number) is an error to log
    /// and skip: the line can never become a record.
    pub fn parse(line: &str) -> Result<Self, String> {
        let raw: Raw = serde_json::from_str(line.trim()).map_err(|e| e.to_string())?;
        let status = raw
            .status
            .parse::<u16>()
            .ok()
            .filter(|s| (100..=599).contains(s))
            .ok_or_else(|| format!("status {:?} is not an HTTP status", raw.status))?;
        let epoch_ms = raw.request_time_epoch.parse::<i64>().map_err(|_| {
            format!(
                "requestTimeEpoch {:?} is not a number",
                raw.request_time_epoch
            )
        })?;
        let time = chrono::DateTime::from_timestamp_millis(epoch_ms)
            .ok_or_else(|| format!("requestTimeEpoch {epoch_ms} is out of range"))?;
        // A response API Gateway made itself may have no latency.
        let latency_ms = match raw.response_latency.as_str() {
            "-" | "" => 0.0,
            l => l
                .parse::<f64>()
                .ok()
                .filter(|l| l.is_finite())
                .ok_or_else(|| format!("responseLatency {l:?} is not a number"))?,
        };
        let request_id =
            present(raw.request_id).ok_or_else(|| "the line has no requestId".to_string())?;
        Ok(AccessLine {
            request_id,
            key_id: present(raw.key_id),
            account_id: present(raw.account_id),
            environment: present(raw.environment)
                .and_then(|e| Environment::parse(&e))
                .unwrap_or_default(),
            route: present(raw.resource_path),
            method: raw.http_method,
            status,
            latency_ms,
            source_ip: present(raw.source_ip),
            time,
            response_type: present(raw.response_type),
        })
    }

    /// The record of a line: the usage record of a request the authorizer
    /// let through, or a refused attempt (`refused`) for a 401 or 403 the
    /// authorizer answered to a key it identified (a Deny for a missing
    /// scope names the key); both with the guard's own checks on every
    /// field. `Ok(None)` for a line that is neither (no key id, or the
    /// authorizer could not decide).
    pub fn usage(&self) -> Result<Option<UsageRecord>, String> {
        let (Some(key_id), Some(account_id)) = (&self.key_id, &self.account_id) else {
            return Ok(None);
        };
        let refused = self
            .response_type
            .as_deref()
            .is_some_and(|t| REFUSALS.contains(&t));
        if refused && !matches!(self.status, 401 | 403) {
            return Ok(None);
        }
        let route = match (&self.route, refused) {
            (Some(route), _) => route.clone(),
            (None, true) => "/".to_string(),
            (None, false) => return Ok(None),
        };
        UsageRecord {
            request_id: self.request_id.clone(),
            key_id: key_id.clone(),
            account_id: account_id.clone(),
            environment: self.environment,
            method: self.method.clone(),
            route,
            status: self.status,
            latency_ms: self.latency_ms,
            time: self.time,
            source_ip: self.source_ip.clone(),
            refused,
        }
        .checked()
        .map(Some)
    }

    /// A 401 or 403 the authorizer answered without naming a key (a key that
    /// did not parse or is unknown, an inactive key's Deny): no account to
    /// count it against, so the usage function only logs it.
    pub fn is_unattributed_refusal(&self) -> bool {
        self.key_id.is_none()
            && matches!(self.status, 401 | 403)
            && self
                .response_type
                .as_deref()
                .is_some_and(|t| REFUSALS.contains(&t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "key_0000000000000000000001";

    fn line(vars: &[(&str, &str)]) -> String {
        render(FORMAT, |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
    }

    fn allowed() -> Vec<(&'static str, &'static str)> {
        vec![
            ("requestId", "0b6c0d1e-7f2a-4c4e-9a0b-1c2d3e4f5a6b"),
            ("authorizer.key_id", KEY),
            ("authorizer.account_id", "acct_1"),
            ("resourcePath", "/python/{proxy+}"),
            ("httpMethod", "GET"),
            ("status", "200"),
            ("responseLatency", "12"),
            ("identity.sourceIp", "203.0.113.9"),
            ("requestTimeEpoch", "1764626400123"),
        ]
    }

    #[test]
    fn the_format_names_what_a_usage_record_needs_and_the_source_address() {
        assert_eq!(
            variables(FORMAT),
            [
                "requestId",
                "authorizer.key_id",
                "authorizer.account_id",
                "authorizer.environment",
                "resourcePath",
                "httpMethod",
                "status",
                "responseLatency",
                "identity.sourceIp",
                "requestTimeEpoch",
                "error.responseType",
            ]
        );
    }

    #[test]
    fn a_line_of_an_allowed_request_is_its_usage_record() {
        let l = AccessLine::parse(&line(&allowed())).unwrap();
        assert_eq!(l.source_ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(l.response_type, None);
        let r = l.usage().unwrap().unwrap();
        assert!(!r.refused);
        assert_eq!(r.source_ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(r.request_id, "0b6c0d1e-7f2a-4c4e-9a0b-1c2d3e4f5a6b");
        assert_eq!(r.key_id, KEY);
        assert_eq!(r.account_id, "acct_1");
        assert_eq!(r.endpoint(), "GET /python/{proxy+}");
        assert_eq!(r.status, 200);
        assert_eq!(r.latency_ms, 12.0);
        assert_eq!(crate::time::format(&r.time), "2025-12-01T22:00:00.123Z");
        // No environment in the context (`-`): a live key's line.
        assert_eq!(r.environment, Environment::Live);
        let mut test = allowed();
        test.push(("authorizer.environment", "test"));
        let r = AccessLine::parse(&line(&test)).unwrap().usage().unwrap();
        assert_eq!(r.unwrap().environment, Environment::Test);
    }

    #[test]
    fn refusals_and_lines_without_a_key_parse_but_are_not_usage() {
        // A 401 for a key that did not parse: no authorizer context.
        let mut vars = allowed();
        vars.retain(|(k, _)| !k.starts_with("authorizer.") && *k != "status");
        vars.push(("status", "401"));
        vars.push(("error.responseType", "UNAUTHORIZED"));
        let l = AccessLine::parse(&line(&vars)).unwrap();
        assert_eq!(l.key_id, None);
        assert_eq!(l.usage(), Ok(None));
        assert!(l.is_unattributed_refusal());
        // A Deny for a missing scope names the key: a refused attempt of
        // it, with the caller's address, and no usage.
        let mut vars = allowed();
        vars.retain(|(k, _)| *k != "status");
        vars.push(("status", "403"));
        vars.push(("error.responseType", "ACCESS_DENIED"));
        let l = AccessLine::parse(&line(&vars)).unwrap();
        assert_eq!(l.key_id.as_deref(), Some(KEY));
        assert!(!l.is_unattributed_refusal());
        let r = l.usage().unwrap().unwrap();
        assert!(r.refused);
        assert_eq!(
            (r.status, r.source_ip.as_deref()),
            (403, Some("203.0.113.9"))
        );
        // An authorizer that failed (500) is neither usage nor an attempt.
        let mut vars = allowed();
        vars.retain(|(k, _)| *k != "status");
        vars.push(("status", "500"));
        vars.push(("error.responseType", "AUTHORIZER_FAILURE"));
        let l = AccessLine::parse(&line(&vars)).unwrap();
        assert_eq!(l.usage(), Ok(None));
        assert!(!l.is_unattributed_refusal());
        // A 429 of the backend's own is usage, as the guard counts it.
        let mut vars = allowed();
        vars.retain(|(k, _)| *k != "status");
        vars.push(("status", "429"));
        assert_eq!(
            AccessLine::parse(&line(&vars))
                .unwrap()
                .usage()
                .unwrap()
                .unwrap()
                .status,
            429
        );
    }

    #[test]
    fn malformed_lines_are_errors_never_panics() {
        let good = line(&allowed());
        for bad in [
            String::new(),
            "not json".to_string(),
            good[..good.len() / 2].to_string(),
            good.replace("\"200\"", "\"abc\""),
            good.replace("\"200\"", "\"99\""),
            good.replace("1764626400123", "-"),
            good.replace("1764626400123", "99999999999999999"),
            good.replace("\"12\"", "\"NaN\""),
            good.replace("0b6c0d1e-7f2a-4c4e-9a0b-1c2d3e4f5a6b", "-"),
            "{\"requestId\": 1}".to_string(),
        ] {
            assert!(AccessLine::parse(&bad).is_err(), "{bad}");
        }
        // Parsed, but no record the guard could have made.
        let weird = good.replace(KEY, "not-a-key-id");
        assert!(AccessLine::parse(&weird).unwrap().usage().is_err());
    }

    #[test]
    fn values_are_escaped_so_a_line_stays_one_json_object() {
        let mut vars = allowed();
        vars.push(("error.responseType", "a\"b\\c\nd"));
        let l = AccessLine::parse(&line(&vars)).unwrap();
        assert_eq!(l.response_type.as_deref(), Some("a\"b\\c\nd"));
        assert!(!line(&vars).contains('\n'));
    }
}
