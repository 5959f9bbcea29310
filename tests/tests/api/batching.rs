//! The local stack's SQS consumers gather batches as Lambda's event source
//! mappings do (template.yaml's `BatchSize` and batching window): a record
//! waits for its batch instead of being handed over alone, so that `make
//! dev` and `make fuzz` do the usage function's writes per batch, as on AWS.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keyhub_tools::template::{SqsBatching, Template};

use crate::helpers::*;

#[tokio::test]
async fn usage_records_reach_the_usage_function_in_one_batch_per_window() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(serde_json::json!({"name": "batched"})).await;
    // The template's batch size, with a window short enough for a test.
    let template = Template::builtin()
        .unwrap()
        .sqs_batching("UsageFunction")
        .unwrap();
    assert_eq!(template.batch_size, 100);
    let batching = SqsBatching {
        batch_size: template.batch_size,
        window: Duration::from_secs(3),
    };
    for _ in 0..25 {
        app.get("/api/v1/whoami", &key).await;
    }
    let source = app
        .stack
        .usage_source()
        .await
        .unwrap()
        .with_batching(Some(batching));
    let deps = Arc::new(app.stack.usage_deps());
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let seen = sizes.clone();
    let started = Instant::now();
    let worker = tokio::spawn(source.run("usage", move |event| {
        seen.lock().unwrap().push(event.records.len());
        let deps = deps.clone();
        async move { keyhub_usage::handle(&deps, event).await }
    }));
    // Every record is queued before the consumer starts, yet the batch
    // waits out the window (more could come) and then holds them all.
    while sizes.lock().unwrap().iter().sum::<usize>() < 25 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            sizes.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "handed over before the window ended"
    );
    let sizes = sizes.lock().unwrap().clone();
    assert_eq!(sizes.len(), 1, "{sizes:?}");
    assert!(sizes[0] >= 25, "{sizes:?}");
    worker.abort();
    // And the function counted them: the key's usage_count.
    let id = app.get("/api/v1/whoami", &key).await.body["key"]["id"].clone();
    let r = app
        .get(
            &format!("/api/v1/api-keys/{}", id.as_str().unwrap()),
            &app.admin_key,
        )
        .await;
    assert_eq!(r.body["usage_count"], 25, "{}", r.body);
}
