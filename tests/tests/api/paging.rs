use std::collections::HashSet;

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

async fn make_keys(app: &TestApp, n: usize) -> HashSet<String> {
    let mut ids = HashSet::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(25) {
        let made = join_all(chunk.iter().map(|i| {
            app.create_key(json!({
                "name": format!("key {i:03}"),
                "environment": if i % 5 == 0 { "test" } else { "live" },
            }))
        }))
        .await;
        ids.extend(
            made.into_iter()
                .map(|(_, k)| k["id"].as_str().unwrap().to_string()),
        );
    }
    ids
}

fn ids_of(body: &Value) -> Vec<String> {
    body["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn paging_through_250_keys_misses_and_repeats_none_in_both_modes() {
    let app = spawn_app().await;
    let mut all = make_keys(&app, 250).await;
    all.insert(app.admin_key_id.clone());

    // Page numbers.
    let mut seen = Vec::new();
    for page in 1.. {
        let r = app
            .get(
                &format!("/api/v1/api-keys?page={page}&size=100"),
                &app.admin_key,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body["total"], 251);
        assert_eq!(r.body["total_pages"], 3);
        assert_eq!(r.body["page"], page);
        seen.extend(ids_of(&r.body));
        if !r.body["has_next"].as_bool().unwrap() {
            break;
        }
    }
    assert_eq!(seen.len(), 251, "a key was repeated or missed");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), all);

    // Cursor, with the per_page alias and a key added mid-way: no key is
    // missed or repeated, and the new key (newest first) is not in the walk.
    let mut seen = Vec::new();
    let mut cursor = String::new();
    let mut pages = 0;
    loop {
        let r = app
            .get(
                &format!("/api/v1/api-keys?per_page=40&cursor={cursor}"),
                &app.admin_key,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["page"], Value::Null);
        seen.extend(ids_of(&r.body));
        pages += 1;
        if pages == 2 {
            app.create_key(json!({"name": "latecomer"})).await;
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 7);
    assert_eq!(seen.len(), 251);
    assert_eq!(seen.into_iter().collect::<HashSet<_>>(), all);
}

#[tokio::test]
async fn filters_and_sort_orders() {
    let app = spawn_app().await;
    make_keys(&app, 12).await;
    let (_, off) = app.create_key(json!({"name": "Zed"})).await;
    app.patch(
        &format!("/api/v1/api-keys/{}", off["id"].as_str().unwrap()),
        &app.admin_key,
        json!({"is_active": false}),
    )
    .await;

    let r = app
        .get("/api/v1/api-keys?environment=test&size=100", &app.admin_key)
        .await;
    assert_eq!(r.body["total"], 3);
    assert!(
        r.body["api_keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["environment"] == "test")
    );

    let r = app
        .get("/api/v1/api-keys?is_active=false", &app.admin_key)
        .await;
    assert_eq!(
        ids_of(&r.body),
        vec![off["id"].as_str().unwrap().to_string()]
    );

    let r = app
        .get(
            "/api/v1/api-keys?sort=name&order=asc&size=100",
            &app.admin_key,
        )
        .await;
    let names: Vec<String> = r.body["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_lowercase())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    assert_eq!(names.last().unwrap(), "zed");

    let r = app
        .get(
            "/api/v1/api-keys?sort=created_at&order=asc&size=100",
            &app.admin_key,
        )
        .await;
    let created: Vec<&str> = r.body["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["created_at"].as_str().unwrap())
        .collect();
    assert!(created.windows(2).all(|w| w[0] <= w[1]));

    // Default: newest first, 10 per page.
    let r = app.get("/api/v1/api-keys", &app.admin_key).await;
    assert_eq!(r.body["size"], 10);
    assert_eq!(r.body["api_keys"].as_array().unwrap().len(), 10);
    assert_eq!(r.body["api_keys"][0]["id"], off["id"]);

    // A cursor keeps its filter, whatever is given beside it.
    let r = app
        .get(
            "/api/v1/api-keys?environment=test&size=2&cursor=",
            &app.admin_key,
        )
        .await;
    let cursor = r.body["next_cursor"].as_str().unwrap().to_string();
    let r = app
        .get(&format!("/api/v1/api-keys?cursor={cursor}"), &app.admin_key)
        .await;
    assert_eq!(r.body["api_keys"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["api_keys"][0]["environment"], "test");
    let r = app
        .get(
            &format!("/api/v1/api-keys?cursor={cursor}&environment=live&sort=name&page=7"),
            &app.admin_key,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["page"], Value::Null);
    assert_eq!(r.body["api_keys"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["api_keys"][0]["environment"], "test");
}

#[tokio::test]
async fn where_two_parameters_say_the_same_one_wins_and_every_valid_cursor_is_a_position() {
    let app = spawn_app().await;
    make_keys(&app, 6).await;

    // size wins over its alias; each must still be valid.
    let r = app
        .get("/api/v1/api-keys?size=2&per_page=5", &app.admin_key)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["size"].clone(), ids_of(&r.body).len()),
        (json!(2), 2)
    );
    let r = app
        .get("/api/v1/api-keys?size=2&per_page=500", &app.admin_key)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["details"]["field"], "per_page");

    // An empty cursor with a page: cursor mode from the start.
    let r = app
        .get("/api/v1/api-keys?page=3&size=3&cursor=", &app.admin_key)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["page"], Value::Null);
    let first = ids_of(&r.body);
    let newest = app.get("/api/v1/api-keys?size=3", &app.admin_key).await;
    assert_eq!(first, ids_of(&newest.body));

    // A cursor names a position by the sort value and id, so one made by
    // hand (here: names after "key 002", ascending) works, and so does one
    // whose key no longer exists.
    let hex: String = b"key 002".iter().map(|b| format!("{b:02x}")).collect();
    let cursor = format!("name.asc.all.all.{hex}.key_0000000000000000000000");
    let r = app
        .get(
            &format!("/api/v1/api-keys?cursor={cursor}&size=100"),
            &app.admin_key,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let names: Vec<&str> = r.body["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["key 002", "key 003", "key 004", "key 005"]);
    // ... and a string that is not a cursor is refused, naming the parameter.
    for bad in ["abc", "name.asc.all.all.6.key_0000000000000000000000"] {
        let r = app
            .get(&format!("/api/v1/api-keys?cursor={bad}"), &app.admin_key)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.body["error"]["details"]["field"], "cursor");
    }
}

#[tokio::test]
async fn lists_carry_the_documents_names_and_status_filters_like_is_active() {
    let app = spawn_app().await;
    make_keys(&app, 6).await;
    let (_, off) = app.create_key(json!({"name": "switched off"})).await;
    let off_id = off["id"].as_str().unwrap().to_string();
    app.patch(
        &format!("/api/v1/api-keys/{off_id}"),
        &app.admin_key,
        json!({"is_active": false}),
    )
    .await;
    // 8 keys with the admin's, 3 to a page: pages 1, 2, 3.
    for (page, has_previous, has_next, len) in
        [(1, false, true, 3), (2, true, true, 3), (3, true, false, 2)]
    {
        let r = app
            .get(
                &format!("/api/v1/api-keys?per_page=3&page={page}"),
                &app.admin_key,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(r.body["per_page"], 3);
        assert_eq!(r.body["size"], 3);
        assert_eq!(r.body["total_items"], 8);
        assert_eq!(r.body["total"], 8);
        assert_eq!(r.body["has_previous"], has_previous, "page {page}");
        assert_eq!(r.body["has_next"], has_next, "page {page}");
        assert_eq!(ids_of(&r.body).len(), len);
    }
    // In cursor mode too: the first page has nothing before it, the next one has.
    let r = app
        .get("/api/v1/api-keys?size=5&cursor=", &app.admin_key)
        .await;
    assert_eq!(r.body["has_previous"], false);
    let cursor = r.body["next_cursor"].as_str().unwrap().to_string();
    let r = app
        .get(&format!("/api/v1/api-keys?cursor={cursor}"), &app.admin_key)
        .await;
    assert_eq!(r.body["has_previous"], true);
    assert_eq!(r.body["has_next"], false);
    assert_eq!(r.body["total_items"], 8);

    // status=inactive|active is is_active=false|true.
    let r = app
        .get("/api/v1/api-keys?status=inactive", &app.admin_key)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(ids_of(&r.body), vec![off_id.clone()]);
    assert_eq!(r.body["total_items"], 1);
    let r = app
        .get("/api/v1/api-keys?status=active&size=100", &app.admin_key)
        .await;
    assert_eq!(r.body["total_items"], 7);
    assert!(!ids_of(&r.body).contains(&off_id));
    // is_active wins where both are given; each must be valid.
    let r = app
        .get(
            "/api/v1/api-keys?status=inactive&is_active=true&size=100",
            &app.admin_key,
        )
        .await;
    assert_eq!(r.body["total_items"], 7);
    let r = app
        .get("/api/v1/api-keys?status=revoked", &app.admin_key)
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "invalid_request");
    assert_eq!(r.body["error"]["details"]["field"], "status");
}

#[tokio::test]
async fn the_delivery_log_pages_with_the_key_lists_names() {
    let app = crate::helpers::spawn_app_with(&crate::helpers::webhook_env("1")).await;
    let (url, rx) = crate::helpers::start_receiver(Vec::new()).await;
    let (endpoint, _) = app.webhook(&url, &["api_key.created"]).await;
    for i in 0..3 {
        app.create_key(json!({"name": format!("hooked {i}")})).await;
    }
    assert!(
        app.pump_webhooks_until(std::time::Duration::from_secs(30), || rx.requests().len()
            >= 3)
            .await
    );
    let path = format!("/api/v1/webhooks/{endpoint}/deliveries");
    let first = app.get(&format!("{path}?per_page=2"), &app.admin_key).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["deliveries"].as_array().unwrap().len(), 2);
    assert_eq!(first.body["per_page"], 2);
    assert_eq!(first.body["total_items"], 3);
    assert_eq!(first.body["has_previous"], false);
    let cursor = first.body["next_cursor"].as_str().expect("a next page");

    let second = app
        .get(
            &format!("{path}?per_page=2&cursor={cursor}"),
            &app.admin_key,
        )
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert_eq!(second.body["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(second.body["total_items"], 3);
    assert_eq!(second.body["has_previous"], true, "{}", second.body);
    let seen: HashSet<&str> = first.body["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second.body["deliveries"].as_array().unwrap())
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(seen.len(), 3, "every delivery once");

    // `limit` wins over its alias; both are checked.
    let r = app
        .get(&format!("{path}?limit=1&per_page=2"), &app.admin_key)
        .await;
    assert_eq!(r.body["deliveries"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["per_page"], 1);
    let r = app.get(&format!("{path}?per_page=0"), &app.admin_key).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    assert_eq!(r.body["error"]["details"]["field"], "per_page");
}
