//! `keyhub-admin bootstrap` as a user runs it: the real binary against the
//! local services (AWS_ENDPOINT_URL_* set by `make test`).

use keyhub_tools::local::LocalStack;

#[tokio::test]
async fn bootstrap_prints_a_working_key_with_every_scope_once() {
    assert!(
        std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok(),
        "needs the local services: run with `make test`"
    );
    let name = format!(
        "cli{}",
        keyhub::domain::base62::random(8).unwrap().to_lowercase()
    );
    let stack = LocalStack::provision(
        &name,
        keyhub::aws::aws_config().await,
        &Default::default(),
        |_| None,
    )
    .await
    .unwrap();

    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyhub-admin"))
        .args([
            "bootstrap",
            "--stack",
            &name,
            "--account-name",
            "ops",
            "--plan",
            "pro",
        ])
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let key = stdout.trim();
    assert_eq!(
        stdout.lines().count(),
        1,
        "stdout is the key alone: {stdout}"
    );
    assert!(!stderr.contains(key), "the key is printed once");

    let auth = stack.authenticator();
    let record = auth
        .authenticate(Some(key), keyhub::domain::time::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.scopes.joined(), "*");
    let account = stack
        .store
        .get_account(&record.account_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(account.name, "ops");
    assert_eq!(account.plan, keyhub::domain::limits::Plan::Pro);

    // Without a table name it explains what it needs.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_keyhub-admin"))
        .args(["bootstrap"])
        .env_remove("KEYS_TABLE")
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--stack"));
}
