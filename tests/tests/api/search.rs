//! The key list's search (`q`): applied by the API to all of the account's
//! keys, before paging, and kept by its cursors.

use std::collections::BTreeSet;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_search_pages_through_every_match_and_only_the_matches() {
    let app = spawn_app().await;
    let mut billing = BTreeSet::new();
    for i in 0..12 {
        let (_, k) = app
            .create_key(json!({"name": format!("Billing job {i}")}))
            .await;
        billing.insert(k["id"].as_str().unwrap().to_string());
        app.create_key(json!({"name": format!("reports {i}")}))
            .await;
    }
    let list = |query: String| {
        let app = &app;
        async move {
            app.get(&format!("/api/v1/api-keys?{query}"), &app.admin_key)
                .await
        }
    };

    // Page numbers: the count and the pages are the matches'.
    let r = list("q=BILLING&size=5&page=3".into()).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["total"].clone(), r.body["total_pages"].clone()),
        (json!(12), json!(3))
    );
    assert_eq!(r.body["api_keys"].as_array().unwrap().len(), 2);

    // A cursor walk finds each match once, and keeps its search even when
    // another q is sent beside the cursor.
    let mut seen = BTreeSet::new();
    let mut cursor = String::new();
    for round in 0.. {
        assert!(round < 10, "the walk did not end");
        let extra = if cursor.is_empty() {
            "q=%20billing%20"
        } else {
            "q=reports"
        };
        let r = list(format!(
            "size=5&sort=name&order=asc&{extra}&cursor={cursor}"
        ))
        .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for k in r.body["api_keys"].as_array().unwrap() {
            assert!(k["name"].as_str().unwrap().starts_with("Billing"), "{k}");
            assert!(
                seen.insert(k["id"].as_str().unwrap().to_string()),
                "twice: {k}"
            );
        }
        match r.body["next_cursor"].as_str() {
            Some(c) => cursor = c.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, billing);

    // With a filter; by id; nothing found.
    let off: Vec<&String> = billing.iter().take(2).collect();
    for id in &off {
        let r = app
            .patch(
                &format!("/api/v1/api-keys/{id}"),
                &app.admin_key,
                json!({"is_active": false}),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    assert_eq!(
        list("q=billing&is_active=true".into()).await.body["total"],
        10
    );
    let r = list(format!("q={}", off[0].to_uppercase())).await;
    assert_eq!(r.body["total"], 1);
    assert_eq!(r.body["api_keys"][0]["id"], off[0].as_str());
    let r = list("q=invoices".into()).await;
    assert_eq!(
        (r.body["total"].clone(), r.body["api_keys"].clone()),
        (json!(0), json!([]))
    );

    // Too long a search is the contract's 400.
    let r = list(format!("q={}", "x".repeat(101))).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.body["error"]["details"]["field"], "q");
}
