//! `POST /api/v1/api-keys/bulk`: deactivate or delete up to 100 keys of the
//! caller's account, each key all-or-nothing with its own result; the same
//! events and authorizer-cache flush as the single PATCH and DELETE.

use std::collections::HashMap;
use std::time::Duration;

use keyhub::http::auth::KeyHeader;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{
    Resp, TestApp, spawn_app, spawn_app_served, spawn_app_with, start_receiver, webhook_env,
};

const BULK: &str = "/api/v1/api-keys/bulk";

fn id(k: &Value) -> String {
    k["id"].as_str().unwrap().to_string()
}

fn path(id: &str) -> String {
    format!("/api/v1/api-keys/{id}")
}

/// A well-formed id that no key has.
fn missing_id() -> String {
    format!("key_{:0>22}", keyhub::domain::base62::random(10).unwrap())
}

async fn bulk(app: &TestApp, key: &str, action: &str, ids: &[String]) -> Resp {
    app.post(BULK, key, json!({"action": action, "ids": ids}))
        .await
}

/// The results by id, checking that there is one per id sent, in order.
fn results(r: &Resp, ids: &[String]) -> HashMap<String, Value> {
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let list = r.body["results"].as_array().expect("results");
    let order: Vec<&str> = list.iter().map(|x| x["id"].as_str().unwrap()).collect();
    assert_eq!(order, ids.iter().map(String::as_str).collect::<Vec<_>>());
    let ok = list.iter().filter(|x| x["status"] == 200).count();
    assert_eq!(r.body["succeeded"], ok);
    assert_eq!(r.body["failed"], list.len() - ok);
    list.iter().map(|x| (id(x), x.clone())).collect()
}

fn status_and_code(x: &Value) -> (u64, Option<&str>) {
    (x["status"].as_u64().unwrap(), x["error"]["code"].as_str())
}

#[tokio::test]
async fn a_mixed_batch_changes_only_what_its_results_say() {
    let app = spawn_app().await;
    let (_, other_key) = app.other_account().await;
    let (a_key, a) = app.create_key(json!({"name": "a"})).await;
    let (_, b) = app.create_key(json!({"name": "b"})).await;
    let (_, off) = app.create_key(json!({"name": "off"})).await;
    let r = app
        .patch(
            &path(&id(&off)),
            &app.admin_key,
            json!({"is_active": false}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let (theirs_key, theirs) = app
        .create_key_as(&other_key, json!({"name": "theirs"}))
        .await;
    let missing = missing_id();
    // Of a key id's shape, but its digits overflow: no key can have it.
    let impossible = format!("key_{}", "z".repeat(22));

    let ids = vec![
        id(&a),
        id(&off),
        missing.clone(),
        id(&theirs),
        impossible.clone(),
    ];
    let r = bulk(&app, &app.admin_key, "deactivate", &ids).await;
    assert_eq!(r.body["action"], "deactivate");
    let got = results(&r, &ids);
    assert_eq!(status_and_code(&got[&id(&a)]), (200, None));
    assert!(got[&id(&a)].get("error").is_none());
    assert_eq!(
        status_and_code(&got[&id(&off)]),
        (409, Some("conflict")),
        "an inactive key is not deactivated again"
    );
    assert_eq!(status_and_code(&got[&missing]), (404, Some("not_found")));
    assert_eq!(status_and_code(&got[&impossible]), (404, Some("not_found")));
    // Another account's key is refused word for word as a missing one.
    assert_eq!(got[&id(&theirs)]["error"], got[&missing]["error"]);
    assert_eq!(got[&id(&theirs)]["status"], got[&missing]["status"]);

    // Only `a` changed: it is refused at once, the other account's key works.
    let r = app.get("/api/v1/whoami", &a_key).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
    assert_eq!(r.code(), "api_key_inactive");
    assert_eq!(
        app.get("/api/v1/whoami", &theirs_key).await.status,
        StatusCode::OK
    );
    let r = app.get(&path(&id(&theirs)), &other_key).await;
    assert_eq!(r.body["is_active"], true);
    let r = app.get(&path(&id(&b)), &app.admin_key).await;
    assert_eq!(r.body["is_active"], true, "b was not named");

    let ids = vec![id(&a), id(&b), missing.clone(), id(&theirs)];
    let r = bulk(&app, &app.admin_key, "delete", &ids).await;
    let got = results(&r, &ids);
    assert_eq!(status_and_code(&got[&id(&a)]), (200, None));
    assert_eq!(status_and_code(&got[&id(&b)]), (200, None));
    assert_eq!(got[&id(&theirs)]["error"], got[&missing]["error"]);
    assert_eq!(status_and_code(&got[&missing]), (404, Some("not_found")));
    for gone in [&a, &b] {
        let r = app.get(&path(&id(gone)), &app.admin_key).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.body);
    }
    assert_eq!(
        app.get("/api/v1/whoami", &a_key).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.get(&path(&id(&theirs)), &other_key).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get(&path(&id(&off)), &app.admin_key).await.status,
        StatusCode::OK
    );
    // Deleting a key already deleted is not found, as a single DELETE says.
    let r = bulk(&app, &app.admin_key, "delete", &[id(&a)]).await;
    let got = results(&r, &[id(&a)]);
    assert_eq!(status_and_code(&got[&id(&a)]), (404, Some("not_found")));
}

#[tokio::test]
async fn bad_batches_are_refused_whole_before_any_key_changes() {
    let app = spawn_app().await;
    let (key, k) = app.create_key(json!({"name": "kept"})).await;
    let real = id(&k);
    let many = |n: usize| -> Vec<String> {
        let mut ids: Vec<String> = (0..n - 1).map(|_| missing_id()).collect();
        ids.push(real.clone());
        ids
    };
    let field = |r: &Resp| r.body["error"]["details"]["field"].clone();
    for (what, body, field_is) in [
        (
            "101 ids",
            json!({"action": "delete", "ids": many(101)}),
            "ids",
        ),
        ("no ids", json!({"action": "delete", "ids": []}), "ids"),
        (
            "a repeated id",
            json!({"action": "delete", "ids": [real, missing_id(), real]}),
            "ids",
        ),
        (
            "a malformed id",
            json!({"action": "delete", "ids": [real, "key_1"]}),
            "ids[1]",
        ),
        (
            "an unknown action",
            json!({"action": "purge", "ids": [real]}),
            "action",
        ),
        (
            "an unknown field",
            json!({"action": "delete", "ids": [real], "force": true}),
            "force",
        ),
    ] {
        let r = app.post(BULK, &app.admin_key, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{what}: {}", r.body);
        assert_eq!(r.code(), "invalid_request", "{what}");
        assert_eq!(field(&r), field_is, "{what}: {}", r.body);
    }
    // No body, a body that is not JSON, a body over the limit.
    let r = app
        .call(Method::POST, BULK, Some(&app.admin_key), None)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let r = app
        .raw(
            app.client
                .post(app.url(BULK))
                .bearer_auth(&app.admin_key)
                .header("content-type", "text/plain")
                .body(format!(r#"{{"action": "delete", "ids": ["{real}"]}}"#)),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.body);
    assert_eq!(r.code(), "unsupported_media_type");
    let huge: Vec<String> = (0..3000).map(|_| missing_id()).collect();
    let r = bulk(&app, &app.admin_key, "delete", &huge).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", r.body);
    assert_eq!(r.code(), "payload_too_large");

    // Only POST: other methods learn which one there is.
    let r = app.get(BULK, &app.admin_key).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.body);
    assert_eq!(r.header("allow"), Some("POST"));

    // The key named in every refused batch still works.
    assert_eq!(app.get("/api/v1/whoami", &key).await.status, StatusCode::OK);
    let r = app.get(&path(&real), &app.admin_key).await;
    assert_eq!(r.body["is_active"], true);

    // 100 ids are allowed: the batch is carried out.
    let hundred = many(100);
    let r = bulk(&app, &app.admin_key, "deactivate", &hundred).await;
    let got = results(&r, &hundred);
    assert_eq!(r.body["succeeded"], 1, "{}", r.body);
    assert_eq!(status_and_code(&got[&real]), (200, None));
    assert_eq!(
        app.get("/api/v1/whoami", &key).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn the_scope_the_single_changes_need_is_needed_for_each_key() {
    let app = spawn_app().await;
    let (_, k) = app.create_key(json!({"name": "target"})).await;
    let ids = vec![id(&k)];
    // Without keys:write: 403 for the request, nothing done.
    let reader = app.key_with(&["keys:read"]).await;
    for action in ["deactivate", "delete"] {
        let r = bulk(&app, &reader, action, &ids).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(r.code(), "insufficient_scope");
        assert_eq!(r.body["error"]["details"]["required_scope"], "keys:write");
    }
    // With keys:write but narrower than a target: that key is refused on
    // its own, as the single PATCH refuses it; the rest go ahead.
    let narrow = app.key_with(&["keys:write", "keys:read"]).await;
    let (_, broad) = app
        .create_key(json!({"name": "broad", "scopes": ["keys:write", "webhooks:write"]}))
        .await;
    let (_, plain) = app
        .create_key(json!({"name": "plain", "scopes": ["keys:read"]}))
        .await;
    let ids = vec![id(&broad), id(&plain)];
    let r = bulk(&app, &narrow, "delete", &ids).await;
    let got = results(&r, &ids);
    assert_eq!(
        status_and_code(&got[&id(&broad)]),
        (403, Some("insufficient_scope"))
    );
    assert_eq!(status_and_code(&got[&id(&plain)]), (200, None));
    assert_eq!(
        app.get(&path(&id(&broad)), &app.admin_key).await.status,
        StatusCode::OK
    );
    let r = app.get(&path(&id(&k)), &app.admin_key).await;
    assert_eq!(r.body["is_active"], true);
}

#[tokio::test]
async fn each_changed_key_sends_its_event_once() {
    let app = spawn_app_with(&webhook_env("0.001")).await;
    let (url, rx) = start_receiver(vec![]).await;
    app.webhook(&url, &["api_key.revoked", "api_key.deleted"])
        .await;
    let mut made = Vec::new();
    for n in 0..4 {
        made.push(id(&app
            .create_key(json!({"name": format!("k{n}")}))
            .await
            .1));
    }
    let (_, off) = app.create_key(json!({"name": "off"})).await;
    app.patch(
        &path(&id(&off)),
        &app.admin_key,
        json!({"is_active": false}),
    )
    .await;

    // Deactivate three (and one already off, one missing); delete two.
    let deactivate = vec![
        made[0].clone(),
        made[1].clone(),
        made[2].clone(),
        id(&off),
        missing_id(),
    ];
    let r = bulk(&app, &app.admin_key, "deactivate", &deactivate).await;
    assert_eq!(r.body["succeeded"], 3, "{}", r.body);
    let delete = vec![made[2].clone(), made[3].clone(), missing_id()];
    let r = bulk(&app, &app.admin_key, "delete", &delete).await;
    assert_eq!(r.body["succeeded"], 2, "{}", r.body);

    // `off` was revoked by its PATCH before: one event of its own.
    let expected = 1 + 3 + 2;
    assert!(
        app.pump_webhooks_until(Duration::from_secs(20), || rx.requests().len() >= expected)
            .await,
        "got {} events",
        rx.requests().len()
    );
    // Anything sent twice would arrive in the time it took the rest.
    app.pump_webhooks_until(Duration::from_secs(2), || false)
        .await;
    let mut got: Vec<(String, String)> = rx
        .requests()
        .iter()
        .map(|r| {
            let b: Value = serde_json::from_str(&r.body).unwrap();
            (
                b["event"].as_str().unwrap().to_string(),
                b["data"]["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = [&made[0], &made[1], &made[2], &id(&off)]
        .iter()
        .map(|k| ("api_key.revoked".to_string(), k.to_string()))
        .chain(
            [&made[2], &made[3]]
                .iter()
                .map(|k| ("api_key.deleted".to_string(), k.to_string())),
        )
        .collect();
    want.sort();
    assert_eq!(got, want);
}

#[tokio::test]
async fn deleted_keys_are_refused_at_once_through_a_300_s_authorizer_cache() {
    let env = [
        ("KEYHUB_RATE_LIMITS", crate::helpers::ROOMY_LIMITS),
        ("KEYHUB_AUTH_CACHE_TTL_SECONDS", "0"),
        ("KEYHUB_AUTH_NEGATIVE_CACHE_TTL_SECONDS", "0"),
    ];
    let app = spawn_app_served(&env, |gateway, stack, base| {
        gateway
            .with_protected_route("GET", "/invoices/{id}")
            .with_authorizer(
                stack,
                r#"{"GET /invoices/{id}": "invoices:read"}"#,
                KeyHeader::XApiKey,
                Duration::from_secs(300),
            )
            .expect("a cacheable table")
            .with_cache_flush(stack, base)
    })
    .await;
    let invoice = |key: String| {
        let req = app
            .client
            .get(app.url("/invoices/1"))
            .header("x-api-key", key);
        app.raw(req)
    };
    for (action, refused) in [
        ("delete", StatusCode::UNAUTHORIZED),
        ("deactivate", StatusCode::FORBIDDEN),
    ] {
        let mut keys = Vec::new();
        let mut batch = Vec::new();
        for n in 0..3 {
            let (key, k) = app
                .create_key(json!({"name": format!("{action}{n}"), "scopes": ["invoices:read"]}))
                .await;
            // Cached by the gateway for 300 s from here.
            assert_eq!(invoice(key.clone()).await.status, StatusCode::OK);
            batch.push(id(&k));
            keys.push(key);
        }
        let (kept, _) = app
            .create_key(json!({"name": "kept", "scopes": ["invoices:read"]}))
            .await;
        assert_eq!(invoice(kept.clone()).await.status, StatusCode::OK);
        let r = bulk(&app, &app.admin_key, action, &batch).await;
        assert_eq!(r.body["succeeded"], 3, "{}", r.body);
        for key in keys {
            let r = invoice(key).await;
            assert_eq!(r.status, refused, "{action}: {}", r.body);
        }
        assert_eq!(invoice(kept).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn concurrent_bulk_and_single_changes_lose_nothing() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for n in 0..12 {
        ids.push(id(&app
            .create_key(json!({"name": format!("k{n}")}))
            .await
            .1));
    }
    // A bulk deactivation of all while each is renamed on its own.
    let renames = ids.iter().map(|k| {
        let app = &app;
        async move {
            app.patch(&path(k), &app.admin_key, json!({"name": "renamed"}))
                .await
                .status
        }
    });
    let (r, renamed) = tokio::join!(
        bulk(&app, &app.admin_key, "deactivate", &ids),
        futures::future::join_all(renames)
    );
    let got = results(&r, &ids);
    for (k, rename) in ids.iter().zip(renamed) {
        let now = app.get(&path(k), &app.admin_key).await.body;
        let deactivated = status_and_code(&got[k]);
        // Each change either holds or says it did not (409 after its retry).
        match deactivated {
            (200, None) => assert_eq!(now["is_active"], false, "{k}"),
            (409, Some("conflict")) => assert_eq!(now["is_active"], true, "{k}"),
            other => panic!("{k}: {other:?}"),
        }
        match rename {
            StatusCode::OK => assert_eq!(now["name"], "renamed", "{k}"),
            StatusCode::CONFLICT => assert_ne!(now["name"], "renamed", "{k}"),
            other => panic!("{k}: rename {other}"),
        }
    }

    // A bulk delete racing single deletes: each key is deleted exactly once.
    let singles = ids.iter().map(|k| {
        let app = &app;
        async move { app.delete(&path(k), &app.admin_key).await.status }
    });
    let (r, single) = tokio::join!(
        bulk(&app, &app.admin_key, "delete", &ids),
        futures::future::join_all(singles)
    );
    let got = results(&r, &ids);
    for (k, single) in ids.iter().zip(single) {
        let by_bulk = got[k]["status"] == 200;
        let by_single = single == StatusCode::OK;
        assert!(
            by_bulk != by_single,
            "{k}: bulk {}, single {single}",
            got[k]
        );
        let loser = if by_bulk {
            single.as_u16() as u64
        } else {
            got[k]["status"].as_u64().unwrap()
        };
        assert_eq!(loser, 404, "{k}: the other one finds it gone");
        assert_eq!(
            app.get(&path(k), &app.admin_key).await.status,
            StatusCode::NOT_FOUND
        );
    }
}
