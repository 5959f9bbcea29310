//! Checking a presented key in process, with no I/O on the measured path:
//! a cached key (parse, checksum, HMAC digest, cache hit, state check) and a
//! key refused on its checksum (refused before the digest or any read),
//! against the baseline a cached check cannot skip, the key's HMAC-SHA256
//! digest. Times depend on the machine; compare the ratios (`make bench`
//! writes the table to bench/MICRO.txt).
//!
//! The real `Authenticator` over a real DynamoDB client whose HTTP client is
//! a stub answering GetItem with the key's item, so the key is read once,
//! cached, and every measured call is a cache hit.
//!
//! `cargo bench -p keyhub --bench verify` (`make bench` runs it).

use std::sync::LazyLock;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, SharedHttpConnector, http_client_fn,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use base64::Engine as _;
use keyhub::aws::store::Store;
use keyhub::cache::CacheSettings;
use keyhub::config::Tables;
use keyhub::domain::apikey::{ApiKey, Environment, KeyPrefix};
use keyhub::domain::key::{NewKey, mint};
use keyhub::domain::limits::Plan;
use keyhub::domain::pepper::Pepper;
use keyhub::domain::scope::Scopes;
use keyhub::domain::time::{self, Timestamp};
use keyhub::http::auth::Authenticator;
use serde_json::{Map, Value, json};

fn main() {
    divan::main();
}

/// An attribute value in DynamoDB's JSON wire format.
fn wire(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        AttributeValue::Ss(v) => json!({ "SS": v }),
        AttributeValue::Ns(v) => json!({ "NS": v }),
        AttributeValue::B(b) => {
            json!({ "B": base64::engine::general_purpose::STANDARD.encode(b.as_ref()) })
        }
        AttributeValue::L(l) => json!({ "L": l.iter().map(wire).collect::<Vec<_>>() }),
        AttributeValue::M(m) => {
            json!({ "M": m.iter().map(|(k, v)| (k.clone(), wire(v))).collect::<Map<_, _>>() })
        }
        _ => Value::Null,
    }
}

/// Answers every request with the same GetItem response.
#[derive(Debug)]
struct GetItemStub(String);

impl HttpConnector for GetItemStub {
    fn call(&self, _request: HttpRequest) -> HttpConnectorFuture {
        let mut response = HttpResponse::new(
            StatusCode::try_from(200).expect("200 is a status"),
            SdkBody::from(self.0.clone()),
        );
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        HttpConnectorFuture::ready(Ok(response))
    }
}

struct Fixture {
    auth: Authenticator,
    pepper: Pepper,
    prefix: KeyPrefix,
    key: String,
    /// The same key with its last character (part of the checksum) changed.
    bad_checksum: String,
    now: Timestamp,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let pepper = Pepper::new(&[7u8; 32]).expect("a 32-byte pepper");
    let prefix = KeyPrefix::default();
    let settings = NewKey {
        account_id: "acct_bench".into(),
        plan: Plan::Pro,
        name: "bench".into(),
        description: None,
        scopes: Scopes::parse_all(["example:read", "keys:read"]).expect("valid scopes"),
        environment: Environment::Live,
        expires_at: None,
        rate_limits: Default::default(),
        metadata: Default::default(),
    };
    let (key, record) = mint(&pepper, &prefix, settings, time::now()).expect("randomness");
    let item: std::collections::HashMap<String, AttributeValue> =
        serde_dynamo::to_item(&record).expect("a key record is an item");
    let body = json!({
        "Item": item.iter().map(|(k, v)| (k.clone(), wire(v))).collect::<Map<_, _>>()
    })
    .to_string();
    let stub = SharedHttpConnector::new(GetItemStub(body));
    let config = aws_sdk_dynamodb::Config::builder()
        .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
        .region(aws_sdk_dynamodb::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "AKIDBENCH",
            "bench",
            None,
            None,
            "bench",
        ))
        .http_client(http_client_fn(move |_, _| stub.clone()))
        .build();
    let store = Store::new(
        aws_sdk_dynamodb::Client::from_conf(config),
        Tables::for_stack("bench"),
    );
    // A TTL no run reaches: every measured call is a hit.
    let cache = CacheSettings {
        ttl: Duration::from_secs(24 * 3600),
        ..CacheSettings::default()
    };
    let auth = Authenticator::new(store, pepper.clone(), prefix.clone(), cache);
    let key = key.expose().to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let first = runtime.block_on(auth.authenticate(Some(&key), time::now()));
    assert!(
        matches!(first, Ok(Ok(_))),
        "the stubbed read did not give the key: {first:?}"
    );
    let last = key.chars().last().unwrap_or('0');
    let other = if last == '0' { '1' } else { '0' };
    let bad_checksum = format!("{}{other}", &key[..key.len() - last.len_utf8()]);
    Fixture {
        auth,
        pepper,
        prefix,
        key,
        bad_checksum,
        now: time::now(),
    }
});

/// A cached key: what a warm authorizer does for a hot key.
#[divan::bench]
fn cached_key(bencher: divan::Bencher) {
    let f = &*FIXTURE;
    bencher.bench(|| {
        let checked = futures::executor::block_on(
            f.auth
                .authenticate(Some(divan::black_box(f.key.as_str())), f.now),
        );
        assert!(matches!(checked, Ok(Ok(_))));
    });
}

/// A key whose checksum does not match: refused without the digest or a read.
#[divan::bench]
fn bad_checksum(bencher: divan::Bencher) {
    let f = &*FIXTURE;
    bencher.bench(|| {
        let checked = futures::executor::block_on(
            f.auth
                .authenticate(Some(divan::black_box(f.bad_checksum.as_str())), f.now),
        );
        assert!(matches!(checked, Ok(Err(_))));
    });
}

/// The baseline: parsing the key and its HMAC-SHA256 digest under the
/// pepper, the work no cached check skips.
#[divan::bench]
fn key_digest(bencher: divan::Bencher) {
    let f = &*FIXTURE;
    bencher.bench(|| {
        let key = ApiKey::parse(divan::black_box(&f.key), &f.prefix).map_err(|e| e.to_string());
        key.map(|k| f.pepper.digest(&k))
    });
}
