use std::collections::HashMap;

use futures::future::join_all;
use keyhub::aws::ratelimit::{Check, Limiter, Outcome, WindowState, checks_for, window_start};
use keyhub::domain::apikey::Environment;
use keyhub::domain::limits::{Limits, Plan, Window};
use keyhub_tools::calls::CallCounter;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Resp, TestApp, clear_of_minute_boundary, minutes_since, spawn_app_with};

/// Limits for these tests: free accounts 50/min, keys roomy unless a key
/// says otherwise.
const LIMITS: &str = r#"{
    "key_default": {"per_minute": 100000, "per_hour": 1000000, "per_day": 10000000},
    "free": {"per_minute": 50, "per_hour": 1000, "per_day": 10000},
    "pro": {"per_minute": 100000},
    "enterprise": {"per_minute": 100000}
}"#;

async fn direct_key(app: &TestApp, account_id: &str, plan: Plan, limits: Limits) -> String {
    app.direct_key(account_id, plan, &["keys:read"], limits)
        .await
        .0
}

fn count(resps: &[Resp]) -> HashMap<u16, usize> {
    let mut m = HashMap::new();
    for r in resps {
        *m.entry(r.status.as_u16()).or_default() += 1;
    }
    m
}

#[tokio::test]
async fn two_hundred_parallel_requests_on_a_50_per_minute_key_give_exactly_50() {
    let app = spawn_app_with(&[("KEYHUB_RATE_LIMITS", LIMITS)]).await;
    let key = direct_key(
        &app,
        "acct_solo",
        Plan::Pro,
        Limits {
            per_minute: Some(50),
            ..Limits::default()
        },
    )
    .await;
    clear_of_minute_boundary().await;
    let resps = join_all((0..200).map(|_| app.get("/api/v1/api-keys?size=1", &key))).await;
    let by_status = count(&resps);
    assert_eq!(by_status.get(&200), Some(&50), "{by_status:?}");
    assert_eq!(by_status.get(&429), Some(&150), "{by_status:?}");

    let now = chrono::Utc::now().timestamp();
    let minute_end = now - now % 60 + 60;
    for r in &resps {
        assert_eq!(r.header("x-ratelimit-limit"), Some("50"));
        let reset: i64 = r.header("x-ratelimit-reset").unwrap().parse().unwrap();
        assert_eq!(reset, minute_end);
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.code(), "rate_limit_exceeded");
            assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
            let retry: i64 = r.header("retry-after").unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry), "{retry}");
            assert_eq!(r.body["error"]["details"]["limit"], 50);
            assert_eq!(r.body["error"]["details"]["window"], "minute");
            assert_eq!(r.body["error"]["details"]["retry_after"], retry);
        }
    }
    // Every success saw its own remaining count: 49 down to 0, once each.
    let mut remaining: Vec<u64> = resps
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .map(|r| r.header("x-ratelimit-remaining").unwrap().parse().unwrap())
        .collect();
    remaining.sort();
    assert_eq!(remaining, (0..50).collect::<Vec<_>>());
}

#[tokio::test]
async fn three_keys_of_one_account_share_its_plan_limit() {
    let app = spawn_app_with(&[("KEYHUB_RATE_LIMITS", LIMITS)]).await;
    let account = "acct_shared";
    let mut keys = Vec::new();
    for _ in 0..3 {
        keys.push(direct_key(&app, account, Plan::Free, Limits::default()).await);
    }
    clear_of_minute_boundary().await;
    let resps = join_all((0..200).map(|i| app.get("/api/v1/whoami", &keys[i % 3]))).await;
    let by_status = count(&resps);
    assert_eq!(by_status.get(&200), Some(&50), "{by_status:?}");
    assert_eq!(by_status.get(&429), Some(&150), "{by_status:?}");
    let denied = resps
        .iter()
        .find(|r| r.status == StatusCode::TOO_MANY_REQUESTS)
        .unwrap();
    assert_eq!(denied.body["error"]["details"]["limit"], 50);

    // Another account is not affected.
    let other = direct_key(&app, "acct_elsewhere", Plan::Free, Limits::default()).await;
    assert_eq!(
        app.get("/api/v1/whoami", &other).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_denied_request_consumes_no_quota() {
    let app = spawn_app_with(&[("KEYHUB_RATE_LIMITS", LIMITS)]).await;
    // The account allows 50 a minute; this key only 5.
    let key = direct_key(
        &app,
        "acct_q",
        Plan::Free,
        Limits {
            per_minute: Some(5),
            ..Limits::default()
        },
    )
    .await;
    let sibling = direct_key(&app, "acct_q", Plan::Free, Limits::default()).await;
    clear_of_minute_boundary().await;
    for _ in 0..30 {
        app.get("/api/v1/whoami", &key).await;
    }
    // 5 passed, 25 were denied by the key's limit and gave their account
    // unit back: the sibling still has 45 of the account's 50.
    let r = app.get("/api/v1/whoami", &sibling).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("44"));
}

#[tokio::test]
async fn windows_roll_over() {
    let sdk = crate::helpers::sdk_config().await;
    let app = spawn_app_with(&[]).await;
    let limiter = Limiter::new(
        aws_sdk_dynamodb::Client::new(&sdk),
        app.stack.config.tables.counters.clone(),
    );
    let checks = [Check {
        subject: "k#roll".into(),
        window: Window::Minute,
        limit: 2,
    }];
    let t = keyhub::domain::time::parse("2026-05-05T10:00:30Z").unwrap();
    for _ in 0..2 {
        assert!(matches!(
            limiter.hit(&checks, t).await.unwrap(),
            Outcome::Allowed(_)
        ));
    }
    let Outcome::Denied {
        state, retry_after, ..
    } = limiter.hit(&checks, t).await.unwrap()
    else {
        panic!("third request in the window passed")
    };
    assert_eq!(retry_after, 30);
    assert_eq!(
        state.reset,
        keyhub::domain::time::parse("2026-05-05T10:01:00Z")
            .unwrap()
            .timestamp()
    );
    // Still denied at the window's last second; allowed in the next one.
    let last = keyhub::domain::time::parse("2026-05-05T10:00:59.900Z").unwrap();
    assert!(matches!(
        limiter.hit(&checks, last).await.unwrap(),
        Outcome::Denied { retry_after: 1, .. }
    ));
    let next = keyhub::domain::time::parse("2026-05-05T10:01:00Z").unwrap();
    let Outcome::Allowed(Some(s)) = limiter.hit(&checks, next).await.unwrap() else {
        panic!("the new window did not open")
    };
    assert_eq!(s.remaining, 1);
}

/// A limiter on the test stack's counters table whose calls are counted.
async fn counted_limiter(app: &TestApp) -> (Limiter, CallCounter) {
    let calls = CallCounter::default();
    let limiter = Limiter::new(
        calls.dynamodb(&crate::helpers::sdk_config().await),
        app.stack.config.tables.counters.clone(),
    );
    (limiter, calls)
}

fn at(s: &str) -> keyhub::domain::time::Timestamp {
    keyhub::domain::time::parse(s).unwrap()
}

#[tokio::test]
async fn the_minute_window_turns_over_while_the_day_keeps_counting() {
    let app = spawn_app_with(&[]).await;
    let (limiter, calls) = counted_limiter(&app).await;
    let checks = [
        Check {
            subject: "k#turnover".into(),
            window: Window::Minute,
            limit: 3,
        },
        Check {
            subject: "k#turnover".into(),
            window: Window::Day,
            limit: 5,
        },
    ];
    // Each request: (time, the window it should report with what is left
    // (Ok) or be refused by (Err), the UpdateItems it may cost).
    let steps = [
        // A subject's first request makes its item: the first write assumes
        // the windows are there, the second starts them.
        ("2026-05-05T10:00:30Z", Ok((Window::Minute, 2)), 2),
        ("2026-05-05T10:00:31Z", Ok((Window::Minute, 1)), 1),
        ("2026-05-05T10:00:32Z", Ok((Window::Minute, 0)), 1),
        ("2026-05-05T10:00:33Z", Err(Window::Minute), 1),
        // The minute turns over: one extra write resets it, and the day
        // goes on from 3 (the refused request took nothing).
        ("2026-05-05T10:01:00Z", Ok((Window::Day, 1)), 2),
        ("2026-05-05T10:01:10Z", Ok((Window::Day, 0)), 1),
        // The minute has room again; the day has none, until midnight.
        ("2026-05-05T10:02:00Z", Err(Window::Day), 1),
        ("2026-05-05T10:02:01Z", Err(Window::Day), 1),
        // The next day both windows start over, in one extra write.
        ("2026-05-06T00:00:05Z", Ok((Window::Minute, 2)), 2),
    ];
    for (time, want, writes) in steps {
        calls.reset();
        let got = limiter.hit(&checks, at(time)).await.unwrap();
        match (want, &got) {
            (Ok(want), Outcome::Allowed(Some(s))) => {
                assert_eq!((s.window, s.remaining), want, "at {time}");
            }
            (
                Err(window),
                Outcome::Denied {
                    state, retry_after, ..
                },
            ) => {
                assert_eq!(state.window, window, "at {time}");
                // Refused until the refusing window ends (midnight for the day).
                let t = at(time);
                assert_eq!(state.reset, window_start(window, t) + window.seconds());
                assert_eq!(
                    *retry_after as i64,
                    state.reset - at(time).timestamp(),
                    "at {time}"
                );
            }
            _ => panic!("at {time}: wanted {want:?}, got {got:?}"),
        }
        assert_eq!(calls.get("UpdateItem"), writes, "UpdateItems at {time}");
    }
}

#[tokio::test]
async fn a_request_the_account_refuses_gives_the_key_its_unit_back() {
    let app = spawn_app_with(&[]).await;
    let (limiter, _) = counted_limiter(&app).await;
    let key = |account: &str, account_limit| {
        checks_for(
            "giveback",
            &Limits {
                per_minute: Some(3),
                ..Limits::default()
            },
            account,
            Environment::Live,
            &Limits {
                per_minute: Some(account_limit),
                ..Limits::default()
            },
        )
    };
    let t = at("2026-05-05T10:00:10Z");
    assert!(matches!(
        limiter.hit(&key("full", 1), t).await.unwrap(),
        Outcome::Allowed(_)
    ));
    // The account has no room left: the key is taken, then given back.
    for _ in 0..5 {
        let Outcome::Denied { state, .. } = limiter.hit(&key("full", 1), t).await.unwrap() else {
            panic!("the account's limit let a request through")
        };
        assert_eq!(state.limit, 1);
    }
    // The key has used one of its 3: with a roomy account, two more pass.
    let Outcome::Allowed(Some(s)) = limiter.hit(&key("roomy", 100), t).await.unwrap() else {
        panic!("the key's units were not given back")
    };
    assert_eq!((s.limit, s.remaining), (3, 1));
    assert!(matches!(
        limiter.hit(&key("roomy", 100), t).await.unwrap(),
        Outcome::Allowed(Some(WindowState { remaining: 0, .. }))
    ));
    assert!(matches!(
        limiter.hit(&key("roomy", 100), t).await.unwrap(),
        Outcome::Denied { .. }
    ));
}

#[tokio::test]
async fn a_protected_request_writes_once_for_its_key_and_once_for_its_account() {
    let app = spawn_app_with(&[("KEYHUB_RATE_LIMITS", LIMITS)]).await;
    // Key and account both limited in all three windows.
    let (key, _) = app
        .direct_key(
            "acct_writes",
            Plan::Free,
            &["keys:read", "example:read"],
            Limits::new(1000, 10_000, 100_000),
        )
        .await;
    for path in ["/api/v1/whoami", "/example/hello"] {
        // The warm-up request counts towards the clock too: a minute that
        // turns over between it and the burst costs the burst's first
        // request a rollover write for each subject.
        clear_of_minute_boundary().await;
        let started = chrono::Utc::now().timestamp();
        assert_eq!(app.get(path, &key).await.status, StatusCode::OK);
        app.calls.reset();
        let n = 20;
        for _ in 0..n {
            let r = app.get(path, &key).await;
            assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        }
        // Two writes a request; on a loaded machine the minute may still
        // turn over during the burst, which costs key and account one more.
        let steady = 2 * n;
        let most = steady + 2 * minutes_since(started);
        let calls = app.calls.snapshot();
        let updates = app.calls.get("UpdateItem");
        assert!((steady..=most).contains(&updates), "{path}: {calls:?}");
        let written = app.calls.write_items();
        assert!((steady..=most).contains(&written), "{path}: {calls:?}");
    }
}

#[tokio::test]
async fn a_window_is_announced_once_and_later_refusals_skip_it() {
    let app = spawn_app_with(&[("KEYHUB_RATE_LIMITS", LIMITS)]).await;
    let (limiter, _) = counted_limiter(&app).await;
    let checks = [Check {
        subject: "k#announce".into(),
        window: Window::Minute,
        limit: 1,
    }];
    let refusal = |o: Outcome| match o {
        Outcome::Denied { unannounced, .. } => unannounced,
        other => panic!("not refused: {other:?}"),
    };
    let t = at("2026-05-05T10:00:10Z");
    limiter.hit(&checks, t).await.unwrap();
    let first = refusal(limiter.hit(&checks, t).await.unwrap()).expect("a first refusal");
    assert_eq!(first.window_id(), "k#announce#m#1777975200");
    limiter.flag_announced(&first).await;
    assert_eq!(refusal(limiter.hit(&checks, t).await.unwrap()), None);
    // The next minute's first refusal is news again.
    let next = at("2026-05-05T10:01:10Z");
    limiter.hit(&checks, next).await.unwrap();
    let again = refusal(limiter.hit(&checks, next).await.unwrap()).expect("news again");
    assert_eq!(again.window_id(), "k#announce#m#1777975260");

    // Through the API: the event's transaction is made once, however many
    // requests are refused after it.
    let key = direct_key(
        &app,
        "acct_announce",
        Plan::Pro,
        Limits {
            per_minute: Some(2),
            ..Limits::default()
        },
    )
    .await;
    clear_of_minute_boundary().await;
    app.calls.reset();
    let mut refused = 0;
    for _ in 0..10 {
        if app.get("/api/v1/whoami", &key).await.status == StatusCode::TOO_MANY_REQUESTS {
            refused += 1;
        }
    }
    assert_eq!(refused, 8);
    assert_eq!(
        app.calls.get("TransactWriteItems"),
        1,
        "{:?}",
        app.calls.snapshot()
    );
}

#[tokio::test]
async fn the_tightest_window_is_reported_on_success() {
    let app = spawn_app_with(&[("KEYHUB_RATE_LIMITS", LIMITS)]).await;
    let key = direct_key(
        &app,
        "acct_t",
        Plan::Pro,
        Limits {
            per_minute: Some(100),
            per_hour: Some(3),
            per_day: Some(1000),
        },
    )
    .await;
    let r = app.get("/api/v1/whoami", &key).await;
    assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("2"));
    let now = chrono::Utc::now().timestamp();
    assert_eq!(
        r.header("x-ratelimit-reset")
            .unwrap()
            .parse::<i64>()
            .unwrap(),
        now - now % 3600 + 3600
    );
}

#[tokio::test]
async fn unreachable_counters_are_503_unless_fail_open_is_set() {
    for (fail_open, want) in [("false", 503), ("true", 200)] {
        let app = spawn_app_with(&[("KEYHUB_RATE_LIMIT_FAIL_OPEN", fail_open)]).await;
        let mut config = app.stack.config.clone();
        config.rate_limit_fail_open = fail_open == "true";
        let mut deps = keyhub_api::Deps::new(
            app.stack.store.client().clone(),
            app.stack.sqs.clone(),
            app.stack.pepper.clone(),
            None,
            config.clone(),
        );
        let dead = aws_sdk_dynamodb::Client::from_conf(
            aws_sdk_dynamodb::config::Builder::from(&crate::helpers::sdk_config().await)
                .endpoint_url("http://127.0.0.1:9")
                .build(),
        );
        deps.guard = keyhub::http::guard::Guard::new(
            Limiter::new(dead, config.tables.counters.clone()),
            config.rate_limits.clone(),
            config.rate_limit_fail_open,
        );
        let mut req = lambda_http::Request::new(lambda_http::Body::Empty);
        *req.uri_mut() = "/api/v1/whoami".parse().unwrap();
        req.headers_mut().insert(
            "x-api-key",
            http::HeaderValue::from_str(&app.admin_key).unwrap(),
        );
        let resp = keyhub_api::handle(&deps, req).await;
        assert_eq!(resp.status(), want, "fail_open={fail_open}");
        if want == 503 {
            assert_eq!(resp.headers()["retry-after"], "1");
        } else {
            assert!(!resp.headers().contains_key("x-ratelimit-limit"));
        }
    }
}

#[tokio::test]
async fn verify_answers_for_keys_of_the_callers_account_and_meters_them() {
    let app = spawn_app_with(&[("KEYHUB_RATE_LIMITS", LIMITS)]).await;
    let service = app.key_with(&["keys:verify"]).await;
    let (customer, _) = app
        .create_key(json!({"name": "customer", "scopes": ["invoices:read"], "rate_limits": {"per_minute": 2}}))
        .await;

    let v = app
        .post("/api/v1/keys/verify", &service, json!({"key": customer}))
        .await;
    assert_eq!(v.status, StatusCode::OK, "{}", v.body);
    assert_eq!(v.body["valid"], true);
    assert_eq!(v.body["code"], "valid");
    assert_eq!(v.body["account_id"], app.account_id);
    assert_eq!(v.body["scopes"], json!(["invoices:read"]));
    assert_eq!(v.body["ratelimit"]["limit"], 2);
    assert_eq!(v.body["ratelimit"]["remaining"], 1);

    let v = app
        .post(
            "/api/v1/keys/verify",
            &service,
            json!({"key": customer, "scopes": ["invoices:write"]}),
        )
        .await;
    assert_eq!(
        (v.body["valid"].clone(), v.body["code"].clone()),
        (json!(false), json!("insufficient_scope"))
    );

    app.post("/api/v1/keys/verify", &service, json!({"key": customer}))
        .await;
    let v = app
        .post("/api/v1/keys/verify", &service, json!({"key": customer}))
        .await;
    assert_eq!(v.body["code"], "rate_limit_exceeded");
    assert_eq!(v.body["ratelimit"]["remaining"], 0);

    let v = app
        .post(
            "/api/v1/keys/verify",
            &service,
            json!({"key": "kh_live_nope"}),
        )
        .await;
    assert_eq!(v.body["code"], "invalid_api_key");
    assert_eq!(v.body["key_id"], json!(null));

    // A key of another account is as unknown as no key at all.
    let (_, other_admin) = app.other_account().await;
    let v = app
        .post("/api/v1/keys/verify", &service, json!({"key": other_admin}))
        .await;
    assert_eq!(v.body["code"], "invalid_api_key");

    // The caller needs keys:verify.
    let r = app
        .post(
            "/api/v1/keys/verify",
            &app.key_with(&["keys:read"]).await,
            json!({"key": customer}),
        )
        .await;
    assert_eq!(r.code(), "insufficient_scope");
}

/// A DynamoDB on 127.0.0.1 that answers every call with `status` and the
/// error `error_type`: (its URL).
async fn failing_dynamodb(status: u16, error_type: &'static str) -> String {
    let body = json!({
        "__type": format!("com.amazonaws.dynamodb.v20120810#{error_type}"),
        "message": "answered by the test's failing DynamoDB",
    })
    .to_string();
    let router = axum::Router::new().fallback(move || {
        let body = body.clone();
        async move {
            (
                axum::http::StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/x-amz-json-1.0")],
                body,
            )
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    url
}

async fn limiter_at(url: &str) -> Limiter {
    let sdk = crate::helpers::sdk_config().await;
    let conf = aws_sdk_dynamodb::config::Builder::from(&sdk)
        .endpoint_url(url)
        .build();
    Limiter::new(
        aws_sdk_dynamodb::Client::from_conf(conf),
        "t-counters".into(),
    )
}

#[tokio::test]
async fn a_throttled_counter_refuses_and_only_an_outage_fails_open() {
    let check = [Check {
        subject: "k#key_0000000000000000000001".into(),
        window: Window::Minute,
        limit: 100,
    }];
    let now = keyhub::domain::time::now();
    // Throttling means the counter is hot: far over any limit. Refused (429
    // with Retry-After), even in a fail-open deployment, which lets requests
    // through only when the counters are out of reach.
    let hot =
        limiter_at(&failing_dynamodb(400, "ProvisionedThroughputExceededException").await).await;
    match hot.hit(&check, now).await {
        Ok(Outcome::Denied {
            retry_after,
            unannounced,
            ..
        }) => {
            assert_eq!(retry_after, 1);
            assert!(unannounced.is_none(), "throttling is not announced");
        }
        other => panic!("a throttled counter should refuse, not {other:?}"),
    }
    let down = limiter_at(&failing_dynamodb(500, "InternalServerError").await).await;
    assert!(
        matches!(
            down.hit(&check, now).await,
            Err(keyhub::aws::store::StoreError::Unavailable(_))
        ),
        "an outage is an error, which fail-open lets through"
    );
}
