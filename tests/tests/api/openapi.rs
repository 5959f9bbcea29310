//! openapi.yaml describes every route of the code, with the same scope, and
//! nothing else.

use std::collections::BTreeSet;

use keyhub::http::routes::ROUTES;
use serde_yaml_ng::Value;

const OPENAPI: &str = include_str!("../../../openapi.yaml");

/// (METHOD, path, scope, needs no key) of every operation but the console's.
fn operations() -> Vec<(String, String, Option<String>, bool)> {
    let doc: Value = serde_yaml_ng::from_str(OPENAPI).expect("openapi.yaml parses");
    assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_mapping().expect("paths") {
        // The console's page and files need no key (tests/api/console.rs).
        if keyhub_api::console::PATHS.contains(&path.as_str().unwrap_or_default()) {
            continue;
        }
        for (method, op) in item.as_mapping().unwrap() {
            let method = method.as_str().unwrap();
            if method == "parameters" {
                continue;
            }
            let scope = match &op["x-required-scope"] {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => panic!("{method} {path:?}: x-required-scope is {other:?}"),
            };
            // `security: []`: the operation needs no key, so it has no scope.
            let public = op["security"].as_sequence().is_some_and(|s| s.is_empty());
            assert!(
                public || op.get("x-required-scope").is_some(),
                "{method} {path:?} names no scope"
            );
            out.push((
                method.to_ascii_uppercase(),
                path.as_str().unwrap().to_string(),
                scope,
                public,
            ));
        }
    }
    out
}

#[test]
fn every_route_is_documented_with_its_scope_and_nothing_else_is() {
    let documented: BTreeSet<_> = operations().into_iter().collect();
    let coded: BTreeSet<_> = ROUTES
        .iter()
        .map(|r| {
            (
                r.method.to_string(),
                r.path.to_string(),
                r.scope.map(str::to_string),
                r.public,
            )
        })
        .collect();
    let missing: Vec<_> = coded.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&coded).collect();
    assert!(
        missing.is_empty(),
        "in the code but not in openapi.yaml: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "in openapi.yaml but not in the code: {extra:?}"
    );
}

#[test]
fn every_error_code_the_api_can_answer_is_in_the_schema() {
    let doc: Value = serde_yaml_ng::from_str(OPENAPI).unwrap();
    let codes: BTreeSet<&str> =
        doc["components"]["schemas"]["ErrorDetail"]["properties"]["code"]["enum"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
    use keyhub::ApiError::*;
    for e in [
        keyhub::ApiError::invalid("f", "r", "m"),
        MissingApiKey,
        InvalidApiKey,
        ApiKeyExpired,
        ApiKeyInactive,
        InsufficientScope {
            required: "x".into(),
        },
        NotFound { what: "x" },
        Conflict("x".into()),
        MethodNotAllowed {
            allow: "GET".into(),
        },
        PayloadTooLarge { limit: 1 },
        UnsupportedMediaType,
        RateLimited {
            limit: 1,
            window: "minute",
            retry_after: 1,
        },
        Internal("x".into()),
        ServiceUnavailable {
            retry_after: 1,
            cause: "x".into(),
        },
    ] {
        assert!(codes.contains(e.code()), "{} is not documented", e.code());
    }
}

/// Every operation the API function answers may be sent `API-Version`, and
/// answers 400 to a malformed or unknown one (before anything else), so
/// each declares the header, from the registry's dates, and a 400; each
/// response that declares headers declares the echoed `API-Version`.
#[test]
fn every_operation_takes_api_version_and_declares_its_400() {
    let doc: Value = serde_yaml_ng::from_str(OPENAPI).unwrap();
    let param = &doc["components"]["parameters"]["ApiVersion"];
    assert_eq!(param["name"].as_str(), Some("API-Version"));
    let dates: Vec<&str> = param["schema"]["enum"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let registry: Vec<&str> = keyhub_api::version::REGISTRY
        .iter()
        .map(|v| v.date)
        .collect();
    assert_eq!(dates, registry, "the parameter lists the versions served");
    let mut seen = 0;
    for (path, item) in doc["paths"].as_mapping().unwrap() {
        for (method, op) in item.as_mapping().unwrap() {
            if method.as_str() == Some("parameters") {
                continue;
            }
            let at = format!("{method:?} {path:?}");
            let refs: Vec<&str> = op["parameters"]
                .as_sequence()
                .map(|ps| ps.iter().filter_map(|p| p["$ref"].as_str()).collect())
                .unwrap_or_default();
            assert!(
                refs.contains(&"#/components/parameters/ApiVersion"),
                "{at} does not take API-Version"
            );
            assert!(!op["responses"]["400"].is_null(), "{at} declares no 400");
            for (code, resp) in op["responses"].as_mapping().unwrap() {
                if let Some(headers) = resp["headers"].as_mapping() {
                    assert!(
                        headers.contains_key("API-Version"),
                        "{at} {code:?} does not declare the API-Version it answers with"
                    );
                }
            }
            seen += 1;
        }
    }
    assert!(seen > 20, "only {seen} operations");
}
