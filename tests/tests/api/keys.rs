use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_new_key_is_shown_once_and_stored_only_as_a_digest() {
    let app = spawn_app().await;
    let (key, created) = app
        .create_key(json!({
            "name": "billing service",
            "description": "reads invoices",
            "scopes": ["invoices:read"],
            "environment": "test",
            "metadata": {"team": "billing"},
            "rate_limits": {"per_minute": 20}
        }))
        .await;
    assert!(key.starts_with("kh_test_"), "{key}");
    assert_eq!(created["prefix"], &key[..12]);
    assert_eq!(created["last4"], &key[key.len() - 4..]);
    assert_eq!(created["scopes"], json!(["invoices:read"]));
    assert_eq!(
        created["rate_limits"],
        json!({"per_minute": 20, "per_hour": 1000000, "per_day": 10000000})
    );
    assert_eq!(created["metadata"], json!({"team": "billing"}));
    assert_eq!(created["usage_count"], 0);
    assert_eq!(created["last_used"], json!(null));

    let id = created["id"].as_str().unwrap();
    let got = app
        .get(&format!("/api/v1/api-keys/{id}"), &app.admin_key)
        .await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(
        got.body.get("key").is_none(),
        "the plaintext is shown only once"
    );
    assert_eq!(got.body["name"], "billing service");

    // Nothing stored holds the plaintext.
    let item = app
        .stack
        .store
        .client()
        .get_item()
        .table_name(&app.stack.config.tables.keys)
        .key(
            "id",
            aws_sdk_dynamodb::types::AttributeValue::S(id.to_string()),
        )
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let dump = format!("{item:?}");
    assert!(
        !dump.contains(&key[12..]),
        "plaintext found in the stored item"
    );

    // And the new key works.
    let me = app.get("/api/v1/whoami", &key).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["key"]["id"], id);
    assert_eq!(me.body["account"]["id"], app.account_id);
}

#[tokio::test]
async fn defaults_least_privilege_and_the_callers_environment() {
    let app = spawn_app().await;
    let (_, k) = app.create_key(json!({"name": "plain"})).await;
    assert_eq!(k["scopes"], json!([]));
    assert_eq!(k["environment"], "live");
    assert_eq!(k["is_active"], true);
    assert_eq!(k["expires_at"], json!(null));
    assert_eq!(k["description"], json!(null));
}

#[tokio::test]
async fn update_with_put_and_patch() {
    let app = spawn_app().await;
    let (_, k) = app
        .create_key(
            json!({"name": "a", "description": "first", "expires_at": "2099-01-01T00:00:00Z"}),
        )
        .await;
    let path = format!("/api/v1/api-keys/{}", k["id"].as_str().unwrap());

    let r = app
        .call(
            reqwest::Method::PUT,
            &path,
            Some(&app.admin_key),
            Some(json!({"name": "b", "scopes": ["keys:read"], "rate_limits": {"per_hour": 7}, "metadata": {"x": 1}})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["name"], "b");
    assert_eq!(r.body["description"], "first", "fields not sent are kept");
    assert_eq!(r.body["scopes"], json!(["keys:read"]));
    assert_eq!(r.body["rate_limits"]["per_hour"], 7);
    assert_eq!(r.body["metadata"], json!({"x": 1}));
    assert!(r.body["updated_at"].as_str() > k["updated_at"].as_str());

    let r = app
        .patch(
            &path,
            &app.admin_key,
            json!({"description": null, "expires_at": null, "rate_limits": null}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["description"], json!(null));
    assert_eq!(r.body["expires_at"], json!(null));
    assert_eq!(
        r.body["rate_limits"]["per_hour"], 1000000,
        "null returns to the defaults"
    );

    let mut got = app.get(&path, &app.admin_key).await;
    assert_eq!(got.body["usage"], json!([]));
    let got_obj = got.body.as_object_mut().unwrap();
    got_obj.remove("usage");
    got_obj.remove("rate_limit_status");
    assert_eq!(got.body, r.body, "a read shows what the update returned");

    // A time already past expires the key at once (no schema can say
    // "in the future", so the API does not refuse it).
    let r = app
        .patch(
            &path,
            &app.admin_key,
            json!({"expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["expires_at"], "2001-01-01T00:00:00.000Z");
}

#[tokio::test]
async fn a_deleted_key_stops_working_at_once() {
    let app = spawn_app().await;
    let (key, k) = app.create_key(json!({"name": "doomed"})).await;
    assert_eq!(app.get("/api/v1/whoami", &key).await.status, StatusCode::OK);
    let path = format!("/api/v1/api-keys/{}", k["id"].as_str().unwrap());
    let r = app.delete(&path, &app.admin_key).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, json!({"message": "API key deleted successfully"}));

    let r = app.get("/api/v1/whoami", &key).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "invalid_api_key");
    assert_eq!(
        app.get(&path, &app.admin_key).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.delete(&path, &app.admin_key).await.code(), "not_found");
}

#[tokio::test]
async fn deactivation_takes_effect_at_once_and_can_be_undone() {
    let app = spawn_app().await;
    let (key, k) = app.create_key(json!({"name": "paused"})).await;
    let path = format!("/api/v1/api-keys/{}", k["id"].as_str().unwrap());
    let r = app
        .patch(&path, &app.admin_key, json!({"is_active": false}))
        .await;
    assert_eq!(r.body["is_active"], false);

    let r = app.get("/api/v1/whoami", &key).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "api_key_inactive");

    app.patch(&path, &app.admin_key, json!({"is_active": true}))
        .await;
    assert_eq!(app.get("/api/v1/whoami", &key).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_expired_key_is_refused() {
    let app = spawn_app().await;
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(1500);
    let (key, _) = app
        .create_key(json!({"name": "brief", "expires_at": soon.to_rfc3339()}))
        .await;
    assert_eq!(app.get("/api/v1/whoami", &key).await.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(1700)).await;
    let r = app.get("/api/v1/whoami", &key).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "api_key_expired");
}

#[tokio::test]
async fn scopes_guard_every_route() {
    let app = spawn_app().await;
    let reader = app.key_with(&["keys:read"]).await;
    let nobody = app.key_with(&[]).await;
    let (_, k) = app.create_key(json!({"name": "target"})).await;
    let path = format!("/api/v1/api-keys/{}", k["id"].as_str().unwrap());

    assert_eq!(
        app.get("/api/v1/api-keys", &reader).await.status,
        StatusCode::OK
    );
    assert_eq!(app.get(&path, &reader).await.status, StatusCode::OK);
    for r in [
        app.post("/api/v1/api-keys", &reader, json!({"name": "x"}))
            .await,
        app.patch(&path, &reader, json!({"name": "x"})).await,
        app.delete(&path, &reader).await,
        app.post(&format!("{path}/rotate"), &reader, json!({}))
            .await,
        app.post("/api/v1/accounts", &reader, json!({"name": "x"}))
            .await,
        app.get("/api/v1/api-keys", &nobody).await,
    ] {
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.body);
        assert_eq!(r.code(), "insufficient_scope");
    }
    // whoami needs no scope at all.
    assert_eq!(
        app.get("/api/v1/whoami", &nobody).await.status,
        StatusCode::OK
    );

    // Wildcards.
    let area = app.key_with(&["keys:*"]).await;
    assert_eq!(
        app.post("/api/v1/api-keys", &area, json!({"name": "ok"}))
            .await
            .status,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn a_key_cannot_grant_scopes_it_does_not_hold() {
    let app = spawn_app().await;
    let writer = app.key_with(&["keys:write", "keys:read"]).await;
    let r = app
        .post(
            "/api/v1/api-keys",
            &writer,
            json!({"name": "x", "scopes": ["*"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "insufficient_scope");
    assert_eq!(r.body["error"]["details"]["required_scope"], "*");

    let (_, k) = app
        .create_key(json!({"name": "t", "scopes": ["webhooks:read"]}))
        .await;
    let path = format!("/api/v1/api-keys/{}", k["id"].as_str().unwrap());
    let r = app
        .patch(&path, &writer, json!({"scopes": ["webhooks:write"]}))
        .await;
    assert_eq!(r.code(), "insufficient_scope");
    // Rotating would hand the writer a key with scopes it lacks.
    let r = app
        .post(&format!("{path}/rotate"), &writer, json!({}))
        .await;
    assert_eq!(r.code(), "insufficient_scope");
    // Within its own scopes it may.
    let (_, _) = app
        .create_key_as(&writer, json!({"name": "y", "scopes": ["keys:read"]}))
        .await;
}

#[tokio::test]
async fn a_delete_racing_updates_of_the_key_still_deletes_it() {
    let app = spawn_app().await;
    for round in 0..5 {
        let (_, k) = app
            .create_key(json!({ "name": format!("raced {round}") }))
            .await;
        let path = format!("/api/v1/api-keys/{}", k["id"].as_str().unwrap());
        // Updates in flight while the delete reads and writes: its
        // condition fails on a key changed meanwhile, and it is decided
        // again on the key as it now is rather than refused.
        let updates = (0..4).map(|i| {
            app.patch(
                &path,
                &app.admin_key,
                json!({ "description": format!("edit {i}") }),
            )
        });
        let (deleted, _) = tokio::join!(
            app.delete(&path, &app.admin_key),
            futures::future::join_all(updates)
        );
        assert!(
            [StatusCode::OK, StatusCode::CONFLICT].contains(&deleted.status),
            "round {round}: {} {}",
            deleted.status,
            deleted.body
        );
        if deleted.status == StatusCode::OK {
            assert_eq!(
                app.get(&path, &app.admin_key).await.status,
                StatusCode::NOT_FOUND
            );
        }
    }
}
