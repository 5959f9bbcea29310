use reqwest::StatusCode;

use crate::helpers::spawn_app;

#[tokio::test]
async fn a_key_is_accepted_in_either_header_in_any_case() {
    let app = spawn_app().await;
    let k = &app.admin_key;
    for (name, value) in [
        ("Authorization", format!("Bearer {k}")),
        ("authorization", format!("bearer {k}")),
        ("X-API-Key", k.clone()),
        ("x-api-key", k.clone()),
        ("X-Api-Key", k.clone()),
    ] {
        let r = app
            .raw(
                app.client
                    .get(app.url("/api/v1/whoami"))
                    .header(name, value),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{name}");
    }
}

#[tokio::test]
async fn missing_malformed_and_unknown_keys_are_401_with_their_codes() {
    let app = spawn_app().await;
    let r = app.raw(app.client.get(app.url("/api/v1/whoami"))).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "missing_api_key");

    let r = app
        .raw(
            app.client
                .get(app.url("/api/v1/whoami"))
                .header("Authorization", "Basic dXNlcjpwYXNz"),
        )
        .await;
    assert_eq!(r.code(), "missing_api_key");

    // A typo in a real key fails the checksum; a well-formed stranger is unknown.
    let mut typo = app.admin_key.clone().into_bytes();
    let i = typo.len() - 10;
    typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
    let typo = String::from_utf8(typo).unwrap();
    let stranger = keyhub::domain::apikey::ApiKey::generate(
        &Default::default(),
        keyhub::domain::apikey::Environment::Live,
    )
    .unwrap();
    let other_prefix = app.admin_key.replacen("kh_", "zz_", 1);
    for bad in [
        "nope",
        "kh_live_",
        typo.as_str(),
        stranger.expose(),
        other_prefix.as_str(),
    ] {
        let r = app.get("/api/v1/whoami", bad).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(r.code(), "invalid_api_key", "{bad}");
    }
}
