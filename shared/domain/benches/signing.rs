//! Signing a webhook delivery, against the serialisation of the message it
//! signs (what every delivery does anyway): the ratio says what the two
//! signature headers add to a delivery's CPU. Times depend on the machine;
//! compare the ratio (`make bench` writes the table to bench/MICRO.txt).
//!
//! `cargo bench -p keyhub-domain --bench signing` (`make bench` runs it).

use std::sync::LazyLock;

use keyhub_domain::apikey::{Environment, KeyPrefix};
use keyhub_domain::events::{Event, EventKind};
use keyhub_domain::key::{NewKey, mint};
use keyhub_domain::limits::{Plan, RateLimitPolicy};
use keyhub_domain::pepper::Pepper;
use keyhub_domain::scope::Scopes;
use keyhub_domain::webhook::{SigningSecret, signature_header};

fn main() {
    divan::main();
}

/// A signing secret and an `api_key.created` event about a real key record,
/// the webhook function's commonest message (about 560 bytes).
struct Sample {
    secret: SigningSecret,
    event: Event,
    body: String,
}

static SAMPLE: LazyLock<Sample> = LazyLock::new(|| {
    let pepper = Pepper::new(&[7u8; 32]).expect("a 32-byte pepper");
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
    let now = keyhub_domain::time::now();
    let (_, record) = mint(&pepper, &KeyPrefix::default(), settings, now).expect("randomness");
    let event = Event::new(
        EventKind::ApiKeyCreated,
        "acct_bench",
        record.view(&RateLimitPolicy::default(), None),
        now,
    );
    let body = event.body();
    Sample {
        secret: SigningSecret::generate().expect("randomness"),
        event,
        body,
    }
});

/// Both headers a delivery carries: `webhook-signature` (Standard Webhooks,
/// over id, timestamp and body) and `X-Signature` (over the body).
#[divan::bench]
fn sign_delivery(bencher: divan::Bencher) {
    let s = &*SAMPLE;
    bencher.bench(|| {
        let body = divan::black_box(s.body.as_bytes());
        (
            signature_header(&s.secret, None, &s.event.id, 1_767_225_600, body),
            s.secret.x_signature(body),
        )
    });
}

/// The baseline: the event serialised to the body that is signed and sent.
#[divan::bench]
fn serialise_event(bencher: divan::Bencher) {
    let s = &*SAMPLE;
    bencher.bench(|| divan::black_box(&s.event).body());
}
