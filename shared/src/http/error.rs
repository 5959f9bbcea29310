//! Every error a client can see, and the one place that maps each to its
//! status code, stable code and body.

use serde_json::{Value, json};

use crate::aws::store::StoreError;
use crate::domain::refusal::Refusal;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    InvalidRequest {
        message: String,
        field: Option<String>,
        reason: &'static str,
    },
    #[error("no API key: send it as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'")]
    MissingApiKey,
    #[error("the API key is not valid")]
    InvalidApiKey,
    #[error("the API key has expired")]
    ApiKeyExpired,
    #[error("the API key has been deactivated")]
    ApiKeyInactive,
    #[error("this request needs the scope '{required}'")]
    InsufficientScope { required: String },
    #[error("{what} not found")]
    NotFound { what: &'static str },
    #[error("{0}")]
    Conflict(String),
    /// `allow`: the path's methods, comma-separated, for the `Allow` header.
    #[error("this path does not support this method; it supports {allow}")]
    MethodNotAllowed { allow: String },
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body must be JSON (Content-Type: application/json)")]
    UnsupportedMediaType,
    #[error("rate limit of {limit} requests per {window} exceeded; retry in {retry_after} s")]
    RateLimited {
        limit: u64,
        window: &'static str,
        retry_after: u64,
    },
    /// The cause is for the log (written once, where the response is
    /// made: `request::error`), never for the client.
    #[error("internal error")]
    Internal(String),
    #[error("a dependency is unavailable; retry in {retry_after} s")]
    ServiceUnavailable { retry_after: u64, cause: String },
}

impl ApiError {
    /// A failure of ours, with what went wrong for the log.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        ApiError::Internal(cause.to_string())
    }

    /// What went wrong, for a system failure (never sent to the client).
    pub fn cause(&self) -> Option<&str> {
        match self {
            ApiError::Internal(cause) | ApiError::ServiceUnavailable { cause, .. } => Some(cause),
            _ => None,
        }
    }

    pub fn invalid(
        field: impl Into<String>,
        reason: &'static str,
        message: impl Into<String>,
    ) -> Self {
        ApiError::InvalidRequest {
            message: message.into(),
            field: Some(field.into()),
            reason,
        }
    }

    pub fn invalid_body(reason: &'static str, message: impl Into<String>) -> Self {
        ApiError::InvalidRequest {
            message: message.into(),
            field: None,
            reason,
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            ApiError::InvalidRequest { .. } => 400,
            ApiError::MissingApiKey | ApiError::InvalidApiKey | ApiError::ApiKeyExpired => 401,
            ApiError::ApiKeyInactive | ApiError::InsufficientScope { .. } => 403,
            ApiError::NotFound { .. } => 404,
            ApiError::Conflict(_) => 409,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::PayloadTooLarge { .. } => 413,
            ApiError::UnsupportedMediaType => 415,
            ApiError::RateLimited { .. } => 429,
            ApiError::Internal(_) => 500,
            ApiError::ServiceUnavailable { .. } => 503,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest { .. } => "invalid_request",
            ApiError::MissingApiKey => "missing_api_key",
            ApiError::InvalidApiKey => "invalid_api_key",
            ApiError::ApiKeyExpired => "api_key_expired",
            ApiError::ApiKeyInactive => "api_key_inactive",
            ApiError::InsufficientScope { .. } => "insufficient_scope",
            ApiError::NotFound { .. } => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::PayloadTooLarge { .. } => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RateLimited { .. } => "rate_limit_exceeded",
            ApiError::Internal(_) => "internal_error",
            ApiError::ServiceUnavailable { .. } => "service_unavailable",
        }
    }

    /// Seconds for a `Retry-After` header, where the error has one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after, .. }
            | ApiError::ServiceUnavailable { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The methods for an `Allow` header, where the error has one (405).
    pub fn allow(&self) -> Option<&str> {
        match self {
            ApiError::MethodNotAllowed { allow } => Some(allow),
            _ => None,
        }
    }

    fn details(&self) -> Option<Value> {
        match self {
            ApiError::InvalidRequest { field, reason, .. } => Some(match field {
                Some(field) => json!({ "field": field, "reason": reason }),
                None => json!({ "reason": reason }),
            }),
            ApiError::InsufficientScope { required } => Some(json!({ "required_scope": required })),
            ApiError::PayloadTooLarge { limit } => Some(json!({ "limit_bytes": limit })),
            ApiError::RateLimited {
                limit,
                window,
                retry_after,
            } => Some(json!({ "limit": limit, "window": window, "retry_after": retry_after })),
            ApiError::ServiceUnavailable { retry_after, .. } => {
                Some(json!({ "retry_after": retry_after }))
            }
            _ => None,
        }
    }

    /// The contract's error body.
    pub fn body(&self, request_id: &str) -> Value {
        json!({ "status": "error", "error": self.object(), "request_id": request_id })
    }

    /// The body's `error` object (`code`, `message`, `details`): also what
    /// a bulk request's refused item carries.
    pub fn object(&self) -> Value {
        let mut error = json!({ "code": self.code(), "message": self.to_string() });
        if let Some(details) = self.details() {
            error["details"] = details;
        }
        error
    }
}

/// What a storage failure means to a client, decided here, at the edge:
/// the store does not know about HTTP.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound { what: "resource" },
            StoreError::Conflict(m) => ApiError::Conflict(m),
            StoreError::Unavailable(_) => ApiError::ServiceUnavailable {
                retry_after: 1,
                cause: e.to_string(),
            },
            StoreError::Internal(_) => ApiError::Internal(e.to_string()),
        }
    }
}

/// The API's words for a refused key: the contract's 401, 403 and 429.
impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Missing => ApiError::MissingApiKey,
            Refusal::Malformed | Refusal::Unknown => ApiError::InvalidApiKey,
            Refusal::Expired => ApiError::ApiKeyExpired,
            Refusal::Inactive => ApiError::ApiKeyInactive,
            Refusal::Scope { required } => ApiError::InsufficientScope { required },
            Refusal::RateLimited {
                limit,
                window,
                retry_after,
            } => ApiError::RateLimited {
                limit,
                window,
                retry_after,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_the_contract_shape() {
        let e = ApiError::invalid("name", "required_field_missing", "name is required");
        assert_eq!(
            e.body("req-1"),
            json!({
                "status": "error",
                "error": {
                    "code": "invalid_request",
                    "message": "name is required",
                    "details": {"field": "name", "reason": "required_field_missing"}
                },
                "request_id": "req-1"
            })
        );
    }

    #[test]
    fn rate_limit_details_and_retry_after() {
        let e = ApiError::RateLimited {
            limit: 50,
            window: "minute",
            retry_after: 12,
        };
        assert_eq!(e.status(), 429);
        assert_eq!(e.retry_after(), Some(12));
        assert_eq!(
            e.body("r")["error"]["details"],
            json!({"limit": 50, "window": "minute", "retry_after": 12})
        );
    }

    #[test]
    fn not_found_has_no_details() {
        let body = ApiError::NotFound { what: "API key" }.body("r");
        assert_eq!(body["error"]["message"], "API key not found");
        assert!(body["error"].get("details").is_none());
    }

    #[test]
    fn a_refusal_is_the_contracts_401_403_or_429() {
        let codes = [
            (Refusal::Missing, 401, "missing_api_key"),
            (Refusal::Malformed, 401, "invalid_api_key"),
            (Refusal::Unknown, 401, "invalid_api_key"),
            (Refusal::Expired, 401, "api_key_expired"),
            (Refusal::Inactive, 403, "api_key_inactive"),
            (
                Refusal::Scope {
                    required: "keys:read".into(),
                },
                403,
                "insufficient_scope",
            ),
            (
                Refusal::RateLimited {
                    limit: 1,
                    window: "minute",
                    retry_after: 3,
                },
                429,
                "rate_limit_exceeded",
            ),
        ];
        for (refusal, status, code) in codes {
            let e = ApiError::from(refusal);
            assert_eq!((e.status(), e.code()), (status, code));
        }
    }

    #[test]
    fn a_failures_cause_is_kept_for_the_log_but_not_shown() {
        let e = ApiError::from(StoreError::Internal("table keyhub-keys not found".into()));
        assert_eq!(e.code(), "internal_error");
        assert!(e.cause().is_some_and(|c| c.contains("keyhub-keys")));
        assert!(!e.body("r").to_string().contains("keyhub-keys"));
    }
}
