//! `API-Version`: the current version without the header, echoed on every
//! answer (errors and the health check too), unknown or malformed → 400.

use reqwest::StatusCode;

use crate::helpers::{Resp, TestApp, spawn_app};

const CURRENT: &str = "2026-12-01";

async fn with_version(app: &TestApp, path: &str, version: Option<&str>) -> Resp {
    let mut req = app.client.get(app.url(path)).bearer_auth(&app.admin_key);
    if let Some(v) = version {
        req = req.header("API-Version", v);
    }
    app.raw(req).await
}

#[tokio::test]
async fn every_answer_names_its_version_and_unknown_ones_are_refused() {
    let app = spawn_app().await;
    assert_eq!(
        keyhub_api::version::current(keyhub_api::version::REGISTRY)
            .unwrap()
            .date,
        CURRENT
    );
    for version in [None, Some(CURRENT)] {
        let r = with_version(&app, "/api/v1/whoami", version).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.header("api-version"), Some(CURRENT));
        // The current version is not retired.
        assert!(r.header("deprecation").is_none() && r.header("sunset").is_none());
    }
    // Errors and the keyless health check carry it too.
    let r = with_version(&app, "/api/v1/api-keys/key_0000000000000000000000", None).await;
    assert_eq!(r.code(), "not_found");
    assert_eq!(r.header("api-version"), Some(CURRENT));
    let r = app
        .call(reqwest::Method::GET, "/api/v1/health", None, None)
        .await;
    assert_eq!(r.header("api-version"), Some(CURRENT));
    let r = app
        .call(reqwest::Method::GET, "/api/v1/whoami", None, None)
        .await;
    assert_eq!(r.code(), "missing_api_key");
    assert_eq!(r.header("api-version"), Some(CURRENT));

    for bad in ["2020-01-01", "2026-12-1", "2026-02-30", "latest", "v1"] {
        let r = with_version(&app, "/api/v1/whoami", Some(bad)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.body);
        assert_eq!(r.code(), "invalid_request");
        assert_eq!(r.body["error"]["details"]["field"], "API-Version", "{bad}");
        assert_eq!(r.body["error"]["details"]["reason"], "invalid_value");
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains(CURRENT),
            "the message lists the versions: {}",
            r.body
        );
        // Refused before the key check: no quota spent, no rate headers.
        assert!(r.header("x-ratelimit-limit").is_none());
        assert_eq!(r.header("api-version"), Some(CURRENT));
    }
}
