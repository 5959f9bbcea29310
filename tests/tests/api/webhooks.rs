//! Webhooks end to end: endpoints through the API, events from key changes,
//! the worker delivering to a real HTTP receiver on 127.0.0.1.

use std::collections::HashMap;
use std::time::Duration;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use keyhub_tools::receiver::{Received, Reply};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{spawn_app, spawn_app_with, start_receiver, webhook_env};

/// The Standard Webhooks check by the specification's own Rust library
/// (`standardwebhooks`), not by keyhub's signer or a copy of it: whether
/// `secret` verifies one of the header's signatures, within the library's
/// five minutes of the timestamp.
fn verifies(secret: &str, r: &Received) -> bool {
    standardwebhooks::Webhook::new(secret)
        .and_then(|w| w.verify(r.body.as_bytes(), &r.headers))
        .is_ok()
}

/// The Standard Webhooks headers of an event signed by keyhub's signer.
fn standard_headers(signature: String, id: &str, timestamp: i64) -> http::HeaderMap {
    let mut h = http::HeaderMap::new();
    h.insert("webhook-id", id.parse().unwrap());
    h.insert("webhook-timestamp", timestamp.to_string().parse().unwrap());
    h.insert("webhook-signature", signature.parse().unwrap());
    h
}

/// What a receiver using the `standardwebhooks` library accepts from
/// keyhub's signer, and what it refuses: another body, another secret,
/// another id or timestamp under the same signature, an old timestamp.
#[test]
fn keyhubs_signatures_verify_with_the_standard_webhooks_library() {
    use keyhub::domain::webhook::{SigningSecret, signature_header};
    use standardwebhooks::{Webhook, WebhookError};

    let current = SigningSecret::generate().unwrap();
    let previous = SigningSecret::generate().unwrap();
    let library = |s: &SigningSecret| Webhook::new(&s.expose()).unwrap();
    let body = br#"{"id":"evt_1","event":"api_key.created","data":{"id":"key_1"}}"#;
    let now = chrono::Utc::now().timestamp();
    let signed = signature_header(&current, Some(&previous), "evt_1", now, body);
    let h = standard_headers(signed.clone(), "evt_1", now);

    library(&current).verify(body, &h).unwrap();
    // During a rotation's grace period the old secret verifies too.
    library(&previous).verify(body, &h).unwrap();

    let refused = |w: Webhook, body: &[u8], h: &http::HeaderMap| w.verify(body, h).unwrap_err();
    let tampered = br#"{"id":"evt_1","event":"api_key.created","data":{"id":"key_2"}}"#;
    assert!(matches!(
        refused(library(&current), tampered, &h),
        WebhookError::InvalidSignature
    ));
    let stranger = SigningSecret::generate().unwrap();
    assert!(matches!(
        refused(library(&stranger), body, &h),
        WebhookError::InvalidSignature
    ));
    let other_id = standard_headers(signed.clone(), "evt_2", now);
    assert!(matches!(
        refused(library(&current), body, &other_id),
        WebhookError::InvalidSignature
    ));
    let other_time = standard_headers(signed, "evt_1", now - 1);
    assert!(matches!(
        refused(library(&current), body, &other_time),
        WebhookError::InvalidSignature
    ));
    // Signed six minutes ago: past the library's five-minute tolerance.
    let old = now - 6 * 60;
    let stale = standard_headers(
        signature_header(&current, None, "evt_1", old, body),
        "evt_1",
        old,
    );
    assert!(matches!(
        refused(library(&current), body, &stale),
        WebhookError::TimestampTooOldError
    ));
}

fn x_signature_ok(secret: &str, r: &Received) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(r.body.as_bytes());
    r.headers["x-signature"]
        == format!("sha256={}", hex::encode(mac.finalize().into_bytes())).as_str()
}

/// A `webhook.test` event of the app's account, as its queue message: what
/// SQS may hand the worker more than once.
fn test_event_message(app: &crate::helpers::TestApp) -> String {
    let event = keyhub::domain::events::Event::new(
        keyhub::domain::events::EventKind::WebhookTest,
        &app.account_id,
        json!({"n": 1}),
        keyhub::domain::time::now(),
    );
    serde_json::to_string(&keyhub::aws::eventbus::WebhookMessage::Event {
        event,
        endpoint_id: None,
    })
    .unwrap()
}

fn body(r: &Received) -> Value {
    serde_json::from_str(&r.body).unwrap()
}

fn header(r: &Received, name: &str) -> String {
    r.headers[name].to_str().unwrap().to_string()
}

const PUMP: Duration = Duration::from_secs(20);

#[tokio::test]
async fn endpoints_are_managed_and_their_urls_checked() {
    let app = spawn_app().await;
    // The default policy: https only, public addresses only.
    for (url, why) in [
        ("http://hooks.example.com/x", "https"),
        ("https://127.0.0.1/x", "public"),
        ("https://169.254.169.254/latest", "public"),
        ("https://localhost/x", "public"),
        ("not a url", "URL"),
    ] {
        let r = app
            .post(
                "/api/v1/webhooks",
                &app.admin_key,
                json!({"url": url, "events": ["*"]}),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{url}");
        assert_eq!(r.body["error"]["details"]["field"], "url");
        assert!(
            r.body["error"]["message"].as_str().unwrap().contains(why),
            "{url}: {}",
            r.body
        );
    }
    for events in [json!([]), json!(["api_key.nope"]), json!("api_key.created")] {
        let r = app
            .post(
                "/api/v1/webhooks",
                &app.admin_key,
                json!({"url": "https://hooks.example.com/x", "events": events}),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{events}");
        assert_eq!(r.body["error"]["details"]["field"], "events");
    }

    let r = app
        .post(
            "/api/v1/webhooks",
            &app.admin_key,
            json!({"url": "https://hooks.example.com/keyhub", "events": ["api_key.created"], "description": "prod"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let id = r.body["id"].as_str().unwrap().to_string();
    assert!(r.body["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(r.body["is_active"], true);

    let got = app
        .get(&format!("/api/v1/webhooks/{id}"), &app.admin_key)
        .await;
    assert!(got.body.get("secret").is_none(), "the secret is shown once");
    assert_eq!(got.body["description"], "prod");
    // Nothing stored holds the secret in the clear.
    let secret = r.body["secret"].as_str().unwrap();
    let stored = app
        .stack
        .store
        .get_endpoint(&app.account_id, &id)
        .await
        .unwrap()
        .unwrap();
    assert!(!format!("{stored:?}").contains(&secret[6..]));

    let r = app
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/webhooks/{id}"),
            Some(&app.admin_key),
            Some(json!({"events": ["api_key.created", "api_key.deleted"], "description": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        r.body["events"],
        json!(["api_key.created", "api_key.deleted"])
    );
    assert_eq!(r.body["description"], Value::Null);
    assert_eq!(r.body["url"], "https://hooks.example.com/keyhub");

    let list = app.get("/api/v1/webhooks", &app.admin_key).await;
    assert_eq!(list.body["webhooks"].as_array().unwrap().len(), 1);
    // Scopes and accounts.
    let reader = app.key_with(&["webhooks:read"]).await;
    assert_eq!(
        app.get("/api/v1/webhooks", &reader).await.status,
        StatusCode::OK
    );
    let r = app.delete(&format!("/api/v1/webhooks/{id}"), &reader).await;
    assert_eq!(r.code(), "insufficient_scope");
    let (_, other) = app.other_account().await;
    assert_eq!(
        app.get(&format!("/api/v1/webhooks/{id}"), &other)
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    assert_eq!(
        app.delete(&format!("/api/v1/webhooks/{id}"), &app.admin_key)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        app.get(&format!("/api/v1/webhooks/{id}"), &app.admin_key)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn key_events_arrive_signed_and_only_where_subscribed() {
    let app = spawn_app_with(&webhook_env("0.001")).await;
    let (created_url, created_rx) = start_receiver(vec![]).await;
    let (updates_url, updates_rx) = start_receiver(vec![]).await;
    let (_, secret) = app
        .webhook(&created_url, &["api_key.created", "api_key.deleted"])
        .await;
    app.webhook(&updates_url, &["api_key.updated", "api_key.revoked"])
        .await;

    let (plaintext, key) = app
        .create_key(json!({"name": "customer", "scopes": ["invoices:read"]}))
        .await;
    let id = key["id"].as_str().unwrap();
    let path = format!("/api/v1/api-keys/{id}");
    app.patch(&path, &app.admin_key, json!({"name": "renamed"}))
        .await;
    app.patch(&path, &app.admin_key, json!({"is_active": false}))
        .await;
    app.delete(&path, &app.admin_key).await;

    assert!(
        app.pump_webhooks_until(PUMP, || created_rx.requests().len() >= 2
            && updates_rx.requests().len() >= 2)
            .await
    );
    // SQS and concurrent delivery keep no order: events carry their time.
    let got = created_rx.requests();
    let mut kinds: Vec<String> = got
        .iter()
        .map(|r| body(r)["event"].as_str().unwrap().to_string())
        .collect();
    kinds.sort();
    assert_eq!(kinds, vec!["api_key.created", "api_key.deleted"]);
    for r in &got {
        assert!(verifies(&secret, r), "signature");
        assert!(x_signature_ok(&secret, r), "X-Signature");
        assert_eq!(header(r, "content-type"), "application/json");
        let b = body(r);
        assert_eq!(header(r, "webhook-id"), b["id"].as_str().unwrap());
        assert!(b["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(b["account_id"], app.account_id);
        assert_eq!(b["data"]["id"], id);
        assert!(
            !r.body.contains(&plaintext[8..]),
            "no key material in events"
        );
        assert!(b["data"].get("key").is_none());
        let ts: i64 = header(r, "webhook-timestamp").parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - ts).abs() < 60);
    }
    let updates: HashMap<String, Value> = updates_rx
        .requests()
        .iter()
        .map(|r| (body(r)["event"].as_str().unwrap().to_string(), body(r)))
        .collect();
    assert_eq!(updates.len(), 2);
    assert_eq!(updates["api_key.updated"]["data"]["name"], "renamed");
    assert_eq!(updates["api_key.revoked"]["data"]["is_active"], false);
}

#[tokio::test]
async fn a_failing_receiver_gets_retries_with_the_same_id_and_growing_delays() {
    // A scale of 0.01 turns 5 s, 5 min into 0.05 s, 3 s.
    let app = spawn_app_with(&webhook_env("0.01")).await;
    let (url, rx) = start_receiver(vec![
        Reply::status(500),
        Reply::status(500),
        Reply::status(200),
    ])
    .await;
    let (endpoint, secret) = app.webhook(&url, &["api_key.created"]).await;
    app.create_key(json!({"name": "k"})).await;
    assert!(
        app.pump_webhooks_until(PUMP, || rx.requests().len() >= 3)
            .await
    );
    // Give a stray fourth attempt the chance to show itself.
    app.pump_webhooks_until(Duration::from_secs(2), || false)
        .await;
    let got = rx.requests();
    assert_eq!(got.len(), 3, "exactly three attempts");
    let ids: Vec<String> = got.iter().map(|r| header(r, "webhook-id")).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "the id stays: {ids:?}");
    for r in &got {
        assert!(verifies(&secret, r));
    }
    let gap1 = got[1].at - got[0].at;
    let gap2 = got[2].at - got[1].at;
    assert!(gap2 > gap1, "delays grow: {gap1:?} then {gap2:?}");
    assert!(gap2 >= Duration::from_millis(2000), "{gap2:?}");

    // The delivery log shows every attempt.
    let list = app
        .get(
            &format!("/api/v1/webhooks/{endpoint}/deliveries"),
            &app.admin_key,
        )
        .await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    let d = &list.body["deliveries"][0];
    assert_eq!(d["status"], "delivered");
    let statuses: Vec<Value> = d["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].clone())
        .collect();
    assert_eq!(statuses, vec![json!(500), json!(500), json!(200)]);
    assert!(d["attempts"][0]["next_attempt_at"].is_string());
    assert!(d["attempts"][2]["next_attempt_at"].is_null());
    let one = app
        .get(
            &format!(
                "/api/v1/webhooks/{endpoint}/deliveries/{}",
                d["id"].as_str().unwrap()
            ),
            &app.admin_key,
        )
        .await;
    assert_eq!(one.body["id"], d["id"]);
    assert_eq!(one.body["payload"]["event"], "api_key.created");
}

#[tokio::test]
async fn gone_disables_and_the_accounts_other_endpoints_hear_of_it() {
    let app = spawn_app_with(&webhook_env("0.001")).await;
    let (gone_url, gone_rx) = start_receiver(vec![Reply::status(410)]).await;
    let (watch_url, watch_rx) = start_receiver(vec![]).await;
    let (gone, _) = app.webhook(&gone_url, &["api_key.created"]).await;
    app.webhook(&watch_url, &["webhook.endpoint_disabled"])
        .await;
    app.create_key(json!({"name": "k"})).await;
    assert!(
        app.pump_webhooks_until(PUMP, || !watch_rx.requests().is_empty())
            .await
    );
    assert_eq!(gone_rx.requests().len(), 1, "no retry after 410");
    let e = app
        .get(&format!("/api/v1/webhooks/{gone}"), &app.admin_key)
        .await;
    assert_eq!(e.body["is_active"], false);
    assert!(e.body["disabled_reason"].as_str().unwrap().contains("410"));
    let notice = body(&watch_rx.requests()[0]);
    assert_eq!(notice["event"], "webhook.endpoint_disabled");
    assert_eq!(notice["data"]["endpoint_id"], gone);
    // Turning it back on clears the reason.
    let r = app
        .call(
            reqwest::Method::PUT,
            &format!("/api/v1/webhooks/{gone}"),
            Some(&app.admin_key),
            Some(json!({"is_active": true})),
        )
        .await;
    assert_eq!(r.body["is_active"], true);
    assert_eq!(r.body["disabled_reason"], Value::Null);
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let app = spawn_app_with(&webhook_env("0.001")).await;
    let (url, rx) = start_receiver(vec![Reply::status(302).header("location", "/elsewhere")]).await;
    let (endpoint, _) = app.webhook(&url, &["api_key.created"]).await;
    app.create_key(json!({"name": "k"})).await;
    assert!(
        app.pump_webhooks_until(PUMP, || rx.requests().len() >= 2)
            .await
    );
    let got = rx.requests();
    assert!(
        got.iter().all(|r| r.path == "/hook"),
        "the redirect target was called"
    );
    let list = app
        .get(
            &format!("/api/v1/webhooks/{endpoint}/deliveries"),
            &app.admin_key,
        )
        .await;
    assert_eq!(
        list.body["deliveries"][0]["attempts"][0]["status_code"],
        302
    );
}

#[tokio::test]
async fn private_addresses_are_refused_on_the_address_connected_to() {
    let (url, rx) = start_receiver(vec![]).await;
    let port = url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    // No allow-list: the literal address is refused before any connection...
    let strict = keyhub::netpolicy::AddressPolicy::parse("", true).unwrap();
    let client =
        keyhub_webhooks::client::DeliveryClient::new(strict.clone(), Duration::from_secs(2))
            .unwrap();
    let a = client.post(&url, Default::default(), "{}".into()).await;
    assert_eq!(a.status, None);
    assert_eq!(a.error.as_deref(), Some("blocked_address"));
    // ...and a name is refused at resolution, whatever address it has.
    use reqwest::dns::Resolve;
    let resolver = keyhub_webhooks::client::PolicyResolver { policy: strict };
    let name: reqwest::dns::Name = "localhost".parse().unwrap();
    assert!(
        resolver.resolve(name).await.is_err(),
        "localhost resolved through the policy"
    );
    let open = keyhub_webhooks::client::PolicyResolver {
        policy: keyhub::netpolicy::AddressPolicy::parse("127.0.0.0/8,::1/128", true).unwrap(),
    };
    let name: reqwest::dns::Name = "localhost".parse().unwrap();
    assert!(open.resolve(name).await.is_ok());
    assert!(rx.requests().is_empty(), "nothing reached the receiver");
    // With the allow-list the same receiver is reached.
    let allowed = keyhub::netpolicy::AddressPolicy::parse("127.0.0.0/8", true).unwrap();
    let client =
        keyhub_webhooks::client::DeliveryClient::new(allowed, Duration::from_secs(2)).unwrap();
    let a = client
        .post(
            &format!("http://127.0.0.1:{port}/hook"),
            Default::default(),
            "{}".into(),
        )
        .await;
    assert_eq!(a.status, Some(204));
    assert_eq!(rx.requests().len(), 1);
}

fn sqs_event(bodies: Vec<String>) -> SqsEvent {
    let mut e = SqsEvent::default();
    for (i, b) in bodies.into_iter().enumerate() {
        let mut m = SqsMessage::default();
        m.message_id = Some(format!("m{i}"));
        m.receipt_handle = Some(format!("r{i}"));
        m.body = Some(b);
        e.records.push(m);
    }
    e
}

#[tokio::test]
async fn a_redelivered_message_does_not_deliver_twice_to_an_endpoint_that_answered_2xx() {
    let app = spawn_app_with(&webhook_env("0.001")).await;
    let (ok_url, ok_rx) = start_receiver(vec![]).await;
    app.webhook(&ok_url, &["webhook.test"]).await;
    let message = test_event_message(&app);
    let deps = app.stack.webhook_deps().unwrap();
    for _ in 0..3 {
        let resp = keyhub_webhooks::handle(&deps, sqs_event(vec![message.clone()])).await;
        assert!(resp.batch_item_failures.is_empty());
    }
    assert_eq!(ok_rx.requests().len(), 1);
}

#[tokio::test]
async fn nothing_is_lost_when_the_worker_dies_mid_batch() {
    let app = spawn_app_with(&webhook_env("0.001")).await;
    let slow = |_| Reply {
        status: 204,
        headers: vec![],
        delay: Duration::from_millis(800),
    };
    let (url, rx) = start_receiver((0..5).map(slow).collect()).await;
    app.webhook(&url, &["api_key.created"]).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let (_, k) = app.create_key(json!({"name": format!("k{i}")})).await;
        ids.push(k["id"].as_str().unwrap().to_string());
    }
    // A worker that takes the batch, then dies while the receiver is slow.
    let deps = app.stack.webhook_deps().unwrap();
    let mut source = app.stack.webhook_source().await.unwrap();
    source.visibility_timeout = Some(2);
    let dying = tokio::spawn({
        let source = source.clone();
        async move {
            let _ = source
                .poll_once(10, Duration::from_secs(1), |event| {
                    keyhub_webhooks::handle(&deps, event)
                })
                .await;
        }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    dying.abort();
    // The messages come back after their visibility timeout; a new worker
    // delivers every event at least once.
    let delivered = || {
        let seen: Vec<String> = rx
            .requests()
            .iter()
            .map(|r| body(r)["data"]["id"].as_str().unwrap().to_string())
            .collect();
        ids.iter().all(|id| seen.contains(id))
    };
    assert!(
        app.pump_webhooks_until(Duration::from_secs(30), delivered)
            .await,
        "an event was lost"
    );
}

#[tokio::test]
async fn rotating_a_secret_signs_with_both_for_a_day_and_test_events_reach_one_endpoint() {
    let app = spawn_app_with(&webhook_env("0.001")).await;
    let (url, rx) = start_receiver(vec![]).await;
    let (other_url, other_rx) = start_receiver(vec![]).await;
    let (endpoint, old) = app.webhook(&url, &["api_key.created"]).await;
    let (_, other_secret) = app.webhook(&other_url, &["*"]).await;
    let r = app
        .post(
            &format!("/api/v1/webhooks/{endpoint}/rotate-secret"),
            &app.admin_key,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let new = r.body["secret"].as_str().unwrap().to_string();
    assert_ne!(new, old);
    let r = app
        .post(
            &format!("/api/v1/webhooks/{endpoint}/test"),
            &app.admin_key,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert!(
        app.pump_webhooks_until(PUMP, || !rx.requests().is_empty())
            .await
    );
    let got = &rx.requests()[0];
    assert_eq!(body(got)["event"], "webhook.test");
    assert!(verifies(&new, got), "the new secret signs");
    assert!(verifies(&old, got), "the old secret still signs");
    assert_eq!(
        header(got, "webhook-signature").split(' ').count(),
        2,
        "one signature per secret"
    );
    assert!(
        !verifies(&other_secret, got),
        "another endpoint's secret does not verify"
    );
    assert!(x_signature_ok(&new, got));
    assert!(
        other_rx.requests().is_empty(),
        "a test event goes to its endpoint only"
    );
}

#[tokio::test]
async fn after_the_last_retry_a_delivery_fails_to_the_dead_letter_queue_and_can_be_retried_by_hand()
{
    // 0.0001 shrinks 5 s … 5 h to under two seconds each.
    let app = spawn_app_with(&webhook_env("0.0001")).await;
    let (url, rx) = start_receiver((0..6).map(|_| Reply::status(500)).collect()).await;
    let (endpoint, _) = app.webhook(&url, &["api_key.created"]).await;
    app.create_key(json!({"name": "k"})).await;
    let failed = || async {
        let l = app
            .get(
                &format!("/api/v1/webhooks/{endpoint}/deliveries"),
                &app.admin_key,
            )
            .await;
        l.body["deliveries"][0]["status"] == "failed"
    };
    assert!(
        app.pump_webhooks_until(Duration::from_secs(40), || rx.requests().len() >= 6)
            .await
    );
    assert!(failed().await);
    assert_eq!(rx.requests().len(), 6, "one attempt and five retries");
    let dlq = app.stack.queue_url("WebhookDeadLetterQueue").unwrap();
    let dead = app
        .stack
        .sqs
        .receive_message()
        .queue_url(dlq)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    assert_eq!(dead.messages.unwrap_or_default().len(), 1);

    // By hand, once the receiver is back (it answers 204 after its script).
    let l = app
        .get(
            &format!("/api/v1/webhooks/{endpoint}/deliveries?limit=1"),
            &app.admin_key,
        )
        .await;
    let delivery = l.body["deliveries"][0]["id"].as_str().unwrap().to_string();
    let r = app
        .post(
            &format!("/api/v1/webhooks/{endpoint}/deliveries/{delivery}/retry"),
            &app.admin_key,
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.body);
    assert!(
        app.pump_webhooks_until(PUMP, || rx.requests().len() >= 7)
            .await
    );
    let d = app
        .get(
            &format!("/api/v1/webhooks/{endpoint}/deliveries/{delivery}"),
            &app.admin_key,
        )
        .await;
    assert_eq!(d.body["status"], "delivered");
    assert_eq!(d.body["attempts"].as_array().unwrap().len(), 7);
}

#[tokio::test]
async fn an_endpoint_failing_for_the_configured_period_is_disabled() {
    let mut env = webhook_env("0.0001");
    env.push(("KEYHUB_WEBHOOK_DISABLE_AFTER_DAYS", "0.00002")); // about 1.7 s
    let app = spawn_app_with(&env).await;
    let (url, rx) = start_receiver((0..20).map(|_| Reply::status(503)).collect()).await;
    let (watch_url, watch_rx) = start_receiver(vec![]).await;
    let (endpoint, _) = app.webhook(&url, &["api_key.created"]).await;
    app.webhook(&watch_url, &["webhook.endpoint_disabled"])
        .await;
    app.create_key(json!({"name": "k"})).await;
    assert!(
        app.pump_webhooks_until(Duration::from_secs(30), || !watch_rx.requests().is_empty())
            .await
    );
    let e = app
        .get(&format!("/api/v1/webhooks/{endpoint}"), &app.admin_key)
        .await;
    assert_eq!(e.body["is_active"], false);
    assert!(
        e.body["disabled_reason"]
            .as_str()
            .unwrap()
            .contains("failed since")
    );
    assert!(rx.requests().len() >= 2);
}

#[tokio::test]
async fn rate_limit_exceeded_is_sent_once_per_key_and_window() {
    let app = spawn_app_with(&webhook_env("0.001")).await;
    let (url, rx) = start_receiver(vec![]).await;
    app.webhook(&url, &["rate_limit.exceeded"]).await;
    let (key, k) = app
        .create_key(json!({"name": "busy", "rate_limits": {"per_minute": 2}}))
        .await;
    crate::helpers::clear_of_minute_boundary().await;
    let statuses: Vec<u16> =
        futures::future::join_all((0..8).map(|_| app.get("/api/v1/whoami", &key)))
            .await
            .iter()
            .map(|r| r.status.as_u16())
            .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 6);
    app.pump_webhooks_until(Duration::from_secs(4), || false)
        .await;
    let got = rx.requests();
    assert_eq!(got.len(), 1, "one event for the window");
    let b = body(&got[0]);
    assert_eq!(b["event"], "rate_limit.exceeded");
    assert_eq!(b["data"]["key_id"], k["id"]);
    assert_eq!(b["data"]["window"], "minute");
    assert_eq!(b["data"]["limit"], 2);
}

#[tokio::test]
async fn the_sweeper_sends_expired_and_rotation_due_once() {
    let mut env = webhook_env("0.001");
    env.push(("KEYHUB_ROTATION_PERIOD_DAYS", "0.00001")); // under a second
    let app = spawn_app_with(&env).await;
    let (url, rx) = start_receiver(vec![]).await;
    app.webhook(&url, &["api_key.expired", "api_key.rotation_due"])
        .await;
    let soon = chrono::Utc::now() + chrono::Duration::milliseconds(1200);
    let (_, expiring) = app
        .create_key(json!({"name": "brief", "expires_at": soon.to_rfc3339()}))
        .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sweeper = app.stack.sweeper_deps().unwrap();
    let first = keyhub_sweeper::sweep(&sweeper, keyhub::domain::time::now())
        .await
        .unwrap();
    let again = keyhub_sweeper::sweep(&sweeper, keyhub::domain::time::now())
        .await
        .unwrap();
    assert_eq!(first.expired, 1);
    assert!(
        first.rotation_due >= 2,
        "the admin key and the new one: {first:?}"
    );
    assert_eq!((again.expired, again.rotation_due), (0, 0), "once each");
    let wanted = 1 + first.rotation_due;
    assert!(
        app.pump_webhooks_until(PUMP, || rx.requests().len() >= wanted)
            .await
    );
    let mut by_kind: HashMap<String, Vec<Value>> = HashMap::new();
    for r in rx.requests() {
        let b = body(&r);
        by_kind
            .entry(b["event"].as_str().unwrap().to_string())
            .or_default()
            .push(b["data"].clone());
    }
    assert_eq!(by_kind["api_key.expired"].len(), 1);
    assert_eq!(by_kind["api_key.expired"][0]["id"], expiring["id"]);
    // A rotated key is no longer due.
    let (_, fresh) = app.create_key(json!({"name": "fresh"})).await;
    app.post(
        &format!("/api/v1/api-keys/{}/rotate", fresh["id"].as_str().unwrap()),
        &app.admin_key,
        json!({}),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let later = keyhub_sweeper::sweep(&sweeper, keyhub::domain::time::now())
        .await
        .unwrap();
    assert_eq!(
        later.rotation_due, 1,
        "only the successor is due: {later:?}"
    );
}

#[tokio::test]
async fn an_event_whose_send_failed_is_relayed_and_a_failed_change_sends_none() {
    let app = spawn_app_with(&webhook_env("0.001")).await;
    let (url, rx) = start_receiver(vec![]).await;
    app.webhook(&url, &["api_key.created", "api_key.rotated"])
        .await;
    // An API whose queue is gone: the change commits, the send fails.
    let mut config = app.stack.config.clone();
    config.webhooks.queue_url = Some(format!("{}-missing", config.webhooks.queue_url.unwrap()));
    let broken = keyhub_api::Deps::new(
        app.stack.store.client().clone(),
        app.stack.sqs.clone(),
        app.stack.pepper.clone(),
        app.stack.secret_box.clone(),
        config,
    );
    let mut req = lambda_http::Request::new(lambda_http::Body::Text(
        json!({"name": "orphan"}).to_string(),
    ));
    *req.method_mut() = http::Method::POST;
    *req.uri_mut() = "/api/v1/api-keys".parse().unwrap();
    req.headers_mut().insert(
        "x-api-key",
        http::HeaderValue::from_str(&app.admin_key).unwrap(),
    );
    req.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    let resp = keyhub_api::handle(&broken, req).await;
    assert_eq!(resp.status(), 201);
    let created: Value = serde_json::from_slice(resp.body().as_ref()).unwrap();

    app.pump_webhooks_until(Duration::from_secs(2), || false)
        .await;
    assert!(rx.requests().is_empty(), "not sent yet");
    // The sweeper relays what the outbox still holds.
    let sweeper = app.stack.sweeper_deps().unwrap();
    let report = keyhub_sweeper::sweep(
        &sweeper,
        keyhub::domain::time::now() + chrono::Duration::minutes(2),
    )
    .await
    .unwrap();
    assert_eq!(report.relayed, 1);
    assert!(
        app.pump_webhooks_until(PUMP, || !rx.requests().is_empty())
            .await
    );
    assert_eq!(body(&rx.requests()[0])["data"]["id"], created["id"]);

    // A change that fails writes no event: the second rotation is refused.
    let (_, k) = app.create_key(json!({"name": "once"})).await;
    let path = format!("/api/v1/api-keys/{}/rotate", k["id"].as_str().unwrap());
    assert_eq!(
        app.post(&path, &app.admin_key, json!({})).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        app.post(&path, &app.admin_key, json!({})).await.status,
        StatusCode::CONFLICT
    );
    app.pump_webhooks_until(Duration::from_secs(3), || false)
        .await;
    let rotated = rx
        .requests()
        .iter()
        .filter(|r| body(r)["event"] == "api_key.rotated")
        .count();
    assert_eq!(rotated, 1);
    let outbox = app
        .stack
        .store
        .pending_outbox(
            keyhub::domain::time::now() + chrono::Duration::minutes(5),
            10,
        )
        .await
        .unwrap();
    assert!(
        outbox.is_empty(),
        "the outbox is empty once everything is sent: {outbox:?}"
    );
}

#[tokio::test]
async fn a_429_with_retry_after_is_retried_after_what_the_receiver_asked() {
    // The schedule's first step shrinks to 5 ms; the receiver asks for 2 s.
    let app = spawn_app_with(&webhook_env("0.001")).await;
    let (url, rx) = start_receiver(vec![
        Reply::status(429).header("retry-after", "2"),
        Reply::status(200),
    ])
    .await;
    app.webhook(&url, &["api_key.created"]).await;
    app.create_key(json!({"name": "k"})).await;
    assert!(
        app.pump_webhooks_until(PUMP, || rx.requests().len() >= 2)
            .await
    );
    let got = rx.requests();
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(1900),
        "retried after {gap:?}, not after Retry-After"
    );
    assert_eq!(header(&got[0], "webhook-id"), header(&got[1], "webhook-id"));
}

#[tokio::test]
async fn the_delivery_log_names_error_classes_not_addresses_or_ports() {
    // A port nothing listens on: the raw error would say so, and where.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let allowed = keyhub::netpolicy::AddressPolicy::parse("127.0.0.0/8", true).unwrap();
    let client =
        keyhub_webhooks::client::DeliveryClient::new(allowed, Duration::from_secs(2)).unwrap();
    let a = client
        .post(
            &format!("http://127.0.0.1:{closed}/hook"),
            Default::default(),
            "{}".into(),
        )
        .await;
    assert_eq!(a.status, None);
    assert_eq!(a.error.as_deref(), Some("connection_refused"));
    let a = client
        .post(
            "http://no-such-host.invalid/hook",
            Default::default(),
            "{}".into(),
        )
        .await;
    assert_eq!(a.error.as_deref(), Some("dns_failure"));
    let strict = keyhub::netpolicy::AddressPolicy::parse("", true).unwrap();
    let client =
        keyhub_webhooks::client::DeliveryClient::new(strict, Duration::from_secs(2)).unwrap();
    let a = client
        .post("http://localhost:9/hook", Default::default(), "{}".into())
        .await;
    assert_eq!(a.error.as_deref(), Some("blocked_address"));
}

#[tokio::test]
async fn an_account_never_gets_more_than_twenty_endpoints_even_at_once() {
    let app = spawn_app_with(&webhook_env("0.01")).await;
    let created = futures::future::join_all((0..26).map(|i| {
        app.post(
            "/api/v1/webhooks",
            &app.admin_key,
            json!({"url": format!("https://hooks{i}.example.com/k"), "events": ["*"]}),
        )
    }))
    .await;
    let ok = created
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(
        ok,
        20,
        "{:?}",
        created.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in created.iter().filter(|r| r.status != StatusCode::CREATED) {
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
    }
    let list = app.get("/api/v1/webhooks", &app.admin_key).await;
    assert_eq!(list.body["webhooks"].as_array().unwrap().len(), 20);
    // Deleting one makes room for exactly one.
    let first = created
        .iter()
        .find(|r| r.status == StatusCode::CREATED)
        .unwrap();
    let id = first.body["id"].as_str().unwrap();
    let r = app
        .delete(&format!("/api/v1/webhooks/{id}"), &app.admin_key)
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    let body = json!({"url": "https://again.example.com/k", "events": ["*"]});
    let r = app
        .post("/api/v1/webhooks", &app.admin_key, body.clone())
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = app.post("/api/v1/webhooks", &app.admin_key, body).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
}

#[tokio::test]
async fn a_url_over_2048_characters_is_refused_with_a_reason() {
    let app = spawn_app_with(&webhook_env("0.01")).await;
    let base = "https://hooks.example.com/";
    let long = format!("{base}{}", "a".repeat(2049 - base.len()));
    let r = app
        .post(
            "/api/v1/webhooks",
            &app.admin_key,
            json!({"url": long, "events": ["*"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.code(), "invalid_request");
    assert_eq!(r.body["error"]["details"]["field"], "url");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("2048"),
        "{}",
        r.body
    );
    let ok = format!("{base}{}", "a".repeat(2048 - base.len()));
    let r = app
        .post(
            "/api/v1/webhooks",
            &app.admin_key,
            json!({"url": ok, "events": ["*"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
}

#[tokio::test]
async fn a_forged_or_malformed_queue_message_sends_nothing_and_changes_nothing() {
    // Retries far off: the delivery stays pending after its first attempt.
    let app = spawn_app_with(&webhook_env("100")).await;
    let (url, rx) = start_receiver(vec![Reply::status(500)]).await;
    let (wh, _) = app.webhook(&url, &["api_key.created"]).await;
    app.create_key(json!({"name": "watched"})).await;
    assert!(
        app.pump_webhooks_until(Duration::from_secs(20), || !rx.requests().is_empty())
            .await
    );
    let list = app
        .get(&format!("/api/v1/webhooks/{wh}/deliveries"), &app.admin_key)
        .await;
    let dlv = list.body["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (other, _) = app.other_account().await;
    let forged = keyhub::aws::eventbus::WebhookMessage::Delivery {
        account_id: other,
        endpoint_id: wh.clone(),
        delivery_id: dlv.clone(),
        chain: None,
    };
    let malformed = json!({"type": "delivery", "account_id": app.account_id,
        "endpoint_id": "wh_x", "delivery_id": dlv})
    .to_string();
    let deps = app.stack.webhook_deps().unwrap();
    let resp = keyhub_webhooks::handle(
        &deps,
        sqs_event(vec![serde_json::to_string(&forged).unwrap(), malformed]),
    )
    .await;
    assert!(resp.batch_item_failures.is_empty(), "dropped, not retried");
    assert_eq!(rx.requests().len(), 1, "nothing more was sent");
    let d = app
        .get(
            &format!("/api/v1/webhooks/{wh}/deliveries/{dlv}"),
            &app.admin_key,
        )
        .await;
    assert_eq!(d.body["status"], "pending", "{}", d.body);
}

/// An event handled again after its first attempt failed (SQS redelivery,
/// the sweeper's relay) must not start a second retry schedule: the
/// delivery is retried by one queue message, and still makes exactly one
/// attempt plus five retries.
#[tokio::test]
async fn an_event_handled_twice_after_a_failure_keeps_one_retry_chain() {
    let app = spawn_app_with(&webhook_env("0.0001")).await;
    let (url, rx) = start_receiver((0..6).map(|_| Reply::status(500)).collect()).await;
    let (endpoint, _) = app.webhook(&url, &["webhook.test"]).await;
    let message = test_event_message(&app);
    let deps = app.stack.webhook_deps().unwrap();
    for _ in 0..3 {
        let resp = keyhub_webhooks::handle(&deps, sqs_event(vec![message.clone()])).await;
        assert!(resp.batch_item_failures.is_empty());
    }
    assert_eq!(rx.requests().len(), 1, "the first attempt, once");
    // Whatever the three handlings queued, one chain carries on.
    assert!(
        app.pump_webhooks_until(Duration::from_secs(40), || rx.requests().len() >= 6)
            .await
    );
    app.pump_webhooks_until(Duration::from_secs(3), || false)
        .await;
    assert_eq!(
        rx.requests().len(),
        6,
        "one attempt and five retries, not more"
    );
    let l = app
        .get(
            &format!("/api/v1/webhooks/{endpoint}/deliveries"),
            &app.admin_key,
        )
        .await;
    assert_eq!(l.body["deliveries"][0]["status"], "failed", "{}", l.body);
    assert_eq!(
        l.body["deliveries"][0]["attempts"].as_array().map(Vec::len),
        Some(6)
    );
}
