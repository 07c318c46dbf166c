use super::*;
use base64::Engine;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(use_: TokenUse, exp: u64) -> Claims {
    Claims {
        sub: "acct".into(),
        iss: ISSUER.into(),
        iat: now(),
        exp,
        jti: "j1".into(),
        token_use: use_,
        email: Some("a@example.test".into()),
        username: Some("acct".into()),
        subscription_expires: Some("2099-12-31".into()),
        family: None,
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn a_signed_token_verifies_with_the_claims_home_assistant_reads() {
    let keys = JwtKeys::from_secret(&[1; 32]).unwrap();
    let token = keys.sign(&claims(TokenUse::Id, now() + 60));
    let got = keys.verify(&token, TokenUse::Id).unwrap();
    assert_eq!(got, claims(TokenUse::Id, got.exp));
    // The names on the wire are the ones hass-nabucasa decodes.
    let payload = token.split('.').nth(1).unwrap();
    let json: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    for name in ["custom:sub-exp", "cognito:username", "email", "exp"] {
        assert!(json.get(name).is_some(), "{name} in {json}");
    }
}

#[test]
fn expired_forged_and_misused_tokens_are_refused() {
    let keys = JwtKeys::from_secret(&[1; 32]).unwrap();
    let expired = keys.sign(&claims(TokenUse::Id, now() - 1));
    assert_eq!(keys.verify(&expired, TokenUse::Id), Err(JwtError::Expired));

    let other = JwtKeys::from_secret(&[2; 32]).unwrap();
    let forged = other.sign(&claims(TokenUse::Id, now() + 60));
    assert_eq!(keys.verify(&forged, TokenUse::Id), Err(JwtError::Invalid));

    let refresh = keys.sign(&claims(TokenUse::Refresh, now() + 60));
    assert!(matches!(
        keys.verify(&refresh, TokenUse::Id),
        Err(JwtError::WrongUse(_))
    ));

    let mut foreign = claims(TokenUse::Id, now() + 60);
    foreign.iss = "someone-else".into();
    assert_eq!(
        keys.verify(&keys.sign(&foreign), TokenUse::Id),
        Err(JwtError::Invalid)
    );

    assert_eq!(
        keys.verify("not a jwt", TokenUse::Id),
        Err(JwtError::Invalid)
    );
    let long = "a".repeat(MAX_JWT_LEN + 1);
    assert_eq!(keys.verify(&long, TokenUse::Id), Err(JwtError::Invalid));
}

#[test]
fn alg_none_and_other_algorithms_are_refused() {
    let keys = JwtKeys::from_secret(&[1; 32]).unwrap();
    let body = b64(&serde_json::to_vec(&claims(TokenUse::Id, now() + 60)).unwrap());
    let none = format!("{}.{body}.", b64(br#"{"alg":"none","typ":"JWT"}"#));
    assert_eq!(keys.verify(&none, TokenUse::Id), Err(JwtError::Algorithm));
    // HS512 with the right key is still not what the master signs with.
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &claims(TokenUse::Id, now() + 60),
        &EncodingKey::from_secret(&[1; 32]).unwrap(),
    )
    .unwrap();
    assert_eq!(keys.verify(&hs512, TokenUse::Id), Err(JwtError::Algorithm));
    // A valid token's signature glued to an alg=none header.
    let good = keys.sign(&claims(TokenUse::Id, now() + 60));
    let sig = good.rsplit('.').next().unwrap();
    let spliced = format!("{}.{body}.{sig}", b64(br#"{"alg":"none"}"#));
    assert_eq!(
        keys.verify(&spliced, TokenUse::Id),
        Err(JwtError::Algorithm)
    );
}

#[test]
fn the_key_file_is_created_private_and_reused() {
    let dir = tempfile::tempdir().unwrap();
    let first = JwtKeys::load_or_create(dir.path()).unwrap();
    let path = dir.path().join(KEY_FILE);
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let token = first.sign(&claims(TokenUse::Access, now() + 60));
    let second = JwtKeys::load_or_create(dir.path()).unwrap();
    assert!(second.verify(&token, TokenUse::Access).is_ok(), "same key");

    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let err = JwtKeys::load_or_create(dir.path()).unwrap_err();
    assert!(err.why.contains("chmod 600"), "{err}");
}
