//! Every class of bad input gets a clear 4xx with a JSON reason: never a 500, never a
//! `message` (whose NC-CE codes kill Home Assistant's Remote UI loop).

use base64::Engine;
use reqwest::Method;
use serde_json::json;
use sluice_master::EdgeAddress;
use sluice_master::accounts::{Claims, JwtKeys, TokenUse, jwt};
use sluice_master::api_limits::MAX_BODY_LEN;
use sluice_proto::token::FernetKey;

use crate::support::*;

async fn fixture() -> Fixture {
    let edge = EdgeAddress {
        host: "edge.sluice.test".into(),
        port: 443,
    };
    Fixture::start(edge, FernetKey::generate(&mut rand::rngs::OsRng), |_| {}).await
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn claims_for(sub: &str, exp_from_now: i64) -> Claims {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    Claims {
        sub: sub.into(),
        iss: jwt::ISSUER.into(),
        iat: now,
        exp: now.saturating_add_signed(exp_from_now),
        jti: "x".into(),
        token_use: TokenUse::Id,
        email: None,
        username: None,
        subscription_expires: None,
        family: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_that_are_malformed_oversize_or_mistyped() {
    let fx = fixture().await;
    send(fx.call(Method::POST, "/instance/register")).await;
    let r = refused(
        fx.call(Method::POST, "/instance/snitun_token")
            .body("{\"aes_key\": "),
        400,
    )
    .await;
    assert!(r.contains("JSON"), "{r}");
    refused(
        fx.call(Method::POST, "/instance/snitun_token")
            .body("[1, 2]"),
        400,
    )
    .await;
    let big = format!("{{\"aes_key\": \"{}\"}}", "a".repeat(MAX_BODY_LEN));
    let r = refused(
        fx.call(Method::POST, "/instance/snitun_token").body(big),
        413,
    )
    .await;
    assert!(r.contains("larger"), "{r}");
    let r = refused(
        fx.call_as(
            Method::POST,
            "/instance/snitun_token",
            HA_AGENT,
            "text/plain",
        )
        .body("{}"),
        415,
    )
    .await;
    assert!(r.contains("application/json"), "{r}");
    // Home Assistant's request without its keys, or with keys of the wrong length.
    refused(
        fx.call(Method::POST, "/instance/snitun_token")
            .json(&json!({})),
        400,
    )
    .await;
    let short = json!({"aes_key": "00", "aes_iv": hex::encode([0u8; 16])});
    let r = refused(
        fx.call(Method::POST, "/instance/snitun_token").json(&short),
        400,
    )
    .await;
    assert!(r.contains("aes_key"), "{r}");
    let gcm = json!({"cipher": "aes-gcm", "protocol_version": 2});
    let r = refused(
        fx.call_as(
            Method::POST,
            "/instance/snitun_token",
            SLUICE_AGENT,
            "application/json",
        )
        .json(&gcm),
        400,
    )
    .await;
    assert!(r.contains("aes-gcm-siv"), "{r}");
    let pings: Vec<_> = (0..=sluice_master::api_limits::MAX_PING_RESULTS)
        .map(|_| json!({"ip": "127.0.0.1"}))
        .collect();
    refused(
        fx.call(Method::POST, "/instance/register")
            .json(&json!({"ping_result": pings})),
        400,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_that_are_missing_expired_forged_or_alg_none() {
    let fx = fixture().await;
    let get = |auth: Option<String>| {
        let req = fx
            .client
            .get(format!("{}/account/payments/subscription_info", fx.base));
        match auth {
            Some(a) => req.header("authorization", a),
            None => req,
        }
    };
    refused(get(None), 401).await;
    refused(get(Some("Basic dXNlcjpwYXNz".into())), 401).await;
    refused(
        get(Some(format!("Bearer {}", fx.tokens.refresh_token))),
        401,
    )
    .await;
    refused(get(Some("Bearer not.a.jwt".into())), 401).await;

    let keys = JwtKeys::load_or_create(fx.state_dir.path()).unwrap();
    let account = fx.accounts().list().await.unwrap().remove(0);
    let expired = keys.sign(&claims_for(&account.id, -10));
    let r = refused(get(Some(format!("Bearer {expired}"))), 401).await;
    assert!(r.contains("expired"), "{r}");

    let forged = JwtKeys::from_secret(&[9; 32])
        .unwrap()
        .sign(&claims_for(&account.id, 600));
    refused(get(Some(format!("Bearer {forged}"))), 401).await;

    let body = b64(&serde_json::to_vec(&claims_for(&account.id, 600)).unwrap());
    let none = format!("{}.{body}.", b64(br#"{"alg":"none","typ":"JWT"}"#));
    let r = refused(get(Some(format!("Bearer {none}"))), 401).await;
    assert!(r.contains("algorithm"), "{r}");

    let unknown = keys.sign(&claims_for("no-such-account", 600));
    refused(get(Some(format!("Bearer {unknown}"))), 401).await;

    // A disabled account is refused with 403 (Home Assistant does not retry it).
    fx.accounts().disable(EMAIL, "test").await.unwrap();
    let r = refused(get(Some(format!("Bearer {}", fx.tokens.id_token))), 403).await;
    assert!(r.contains("disabled"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_and_a_replay_is_refused() {
    let fx = fixture().await;
    let refresh = |token: &str| {
        fx.client
            .post(format!("{}/auth/refresh", fx.base))
            .json(&json!({"refresh_token": token}))
    };
    let (status, next) = send(refresh(&fx.tokens.refresh_token)).await;
    assert_eq!(status, 200, "{next}");
    let next_refresh = next["refresh_token"].as_str().unwrap().to_owned();
    assert!(next["id_token"].as_str().is_some());
    let r = refused(refresh(&fx.tokens.refresh_token), 401).await;
    assert!(r.contains("used before"), "{r}");
    refused(refresh(&next_refresh), 401).await;
    refused(refresh(&fx.tokens.id_token), 401).await;
    refused(fx.client.post(format!("{}/auth/refresh", fx.base)), 400).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_methods_and_order() {
    let fx = fixture().await;
    let r = refused(fx.call(Method::GET, "/no/such/thing"), 404).await;
    assert!(r.contains("/no/such/thing"), "{r}");
    // Listed in discovery, not offered yet: still a JSON 404.
    refused(
        fx.call(Method::POST, "/instance/dns_challenge_txt")
            .json(&json!({"txt": "x"})),
        404,
    )
    .await;
    refused(fx.call(Method::GET, "/instance/register"), 405).await;
    // A token before the instance is registered.
    let keys = json!({"aes_key": hex::encode([1u8; 32]), "aes_iv": hex::encode([2u8; 16])});
    let r = refused(
        fx.call(Method::POST, "/instance/snitun_token").json(&keys),
        404,
    )
    .await;
    assert!(r.contains("register"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_works_and_guessing_is_limited() {
    let fx = fixture().await;
    let login = |email: &str, password: &str| {
        fx.client
            .post(format!("{}/auth/login", fx.base))
            .json(&json!({"email": email, "password": password}))
    };
    let (status, set) = send(login(EMAIL, "a long password")).await;
    assert_eq!(status, 200, "{set}");
    let id = set["id_token"].as_str().unwrap();
    let (status, _) = send(
        fx.client
            .get(format!("{}/account/payments/subscription_info", fx.base))
            .header("authorization", format!("Bearer {id}")),
    )
    .await;
    assert_eq!(status, 200, "the signed-in token works");
    refused(login("nobody@example.test", "a long password"), 401).await;
    for _ in 0..sluice_master::api_limits::MAX_FAILURES_PER_ACCOUNT {
        refused(login(EMAIL, "not the password"), 401).await;
    }
    let r = refused(login(EMAIL, "a long password"), 429).await;
    assert!(r.contains("too many"), "{r}");
    refused(fx.client.post(format!("{}/auth/login", fx.base)), 400).await;
}
