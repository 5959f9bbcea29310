//! The one TLS stack the functions ship: rustls on ring, for the SDK's client
//! (`keyhub::aws::http_client`) and the webhook worker's (README, "Sizes").
//! Nothing else here speaks TLS: DynamoDB Local, moto and the receivers are
//! plain HTTP on 127.0.0.1, so a client that cannot make a TLS connection
//! (no crypto provider, no cipher suite in common, no root store) would pass
//! every other test and fail its first call in AWS. A TLS server on
//! 127.0.0.1 whose certificate no root signs shows each client offering TLS
//! to the right name, checking the certificate, and refusing it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_rustls::rustls;

/// What the server saw of each connection: the name the client asked for
/// (SNI) and how the handshake ended.
#[derive(Debug, Clone)]
struct Seen {
    server_name: Option<String>,
    outcome: String,
}

struct TlsServer {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl TlsServer {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("seen lock").clone()
    }
}

/// A TLS server on 127.0.0.1 with a self-signed certificate for `localhost`.
async fn spawn_tls_server() -> TlsServer {
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key)
    .expect("server config");
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let config = config.clone();
            let record = record.clone();
            tokio::spawn(async move {
                let acceptor = tokio_rustls::LazyConfigAcceptor::new(
                    rustls::server::Acceptor::default(),
                    stream,
                );
                let start = match acceptor.await {
                    Ok(start) => start,
                    Err(e) => {
                        record.lock().expect("seen lock").push(Seen {
                            server_name: None,
                            outcome: format!("no ClientHello: {e}"),
                        });
                        return;
                    }
                };
                let server_name = start.client_hello().server_name().map(str::to_string);
                let outcome = match start.into_stream(config).await {
                    Ok(_) => "handshake completed".to_string(),
                    Err(e) => e.to_string(),
                };
                record.lock().expect("seen lock").push(Seen {
                    server_name,
                    outcome,
                });
            });
        }
    });
    TlsServer { port, seen }
}

/// Waits until the server has seen a connection end, or fails the test.
async fn first_seen(server: &TlsServer) -> Seen {
    for _ in 0..100 {
        if let Some(s) = server.seen().into_iter().next() {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the TLS server saw no connection");
}

#[tokio::test]
async fn the_sdk_client_speaks_tls_and_refuses_an_unknown_certificate() {
    let server = spawn_tls_server().await;
    let sdk = crate::helpers::sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&sdk)
            .endpoint_url(format!("https://localhost:{}", server.port))
            .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(1))
            .build(),
    );
    let err = ddb
        .list_tables()
        .send()
        .await
        .expect_err("a certificate no root signs must be refused");
    assert!(
        matches!(err, aws_sdk_dynamodb::error::SdkError::DispatchFailure(_)),
        "refused before any request was sent: {err:?}"
    );
    let seen = first_seen(&server).await;
    assert_eq!(seen.server_name.as_deref(), Some("localhost"), "{seen:?}");
    assert!(
        seen.outcome.contains("UnknownCA"),
        "the client checked the certificate and said why it refused it: {seen:?}"
    );
}

#[tokio::test]
async fn a_webhook_to_an_endpoint_with_an_unknown_certificate_fails_as_tls_error() {
    let server = spawn_tls_server().await;
    let policy = keyhub::netpolicy::AddressPolicy::parse("127.0.0.0/8", false).expect("policy");
    let client = keyhub_webhooks::client::DeliveryClient::new(policy, Duration::from_secs(5))
        .expect("delivery client");
    let answer = client
        .post(
            &format!("https://localhost:{}/hook", server.port),
            http::HeaderMap::new(),
            "{}".to_string(),
        )
        .await;
    assert_eq!(
        answer.status, None,
        "no response over a refused TLS connection"
    );
    assert_eq!(
        answer.error.as_deref(),
        Some(keyhub_webhooks::client::class::TLS_ERROR),
        "the delivery log names the failure: {answer:?}"
    );
    let seen = first_seen(&server).await;
    assert_eq!(seen.server_name.as_deref(), Some("localhost"), "{seen:?}");
    assert!(seen.outcome.contains("UnknownCA"), "{seen:?}");
}
