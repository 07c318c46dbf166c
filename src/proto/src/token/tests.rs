use std::time::{Duration, UNIX_EPOCH};

use proptest::prelude::*;

use super::*;
use crate::limits::MAX_TOKEN_LEN;
use crate::peek::Peek;
use crate::random::{Scripted, VectorPattern};
use crate::test_vectors;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

const NOW: u64 = 1_800_000_000;

fn claims() -> TokenClaims {
    TokenClaims {
        valid: 4_102_444_800.0,
        hostname: "a.example.test".parse().unwrap(),
        aliases: vec![],
        aes_key: [0x20; 32],
        aes_iv: [0x40; 16],
        protocol_version: ProtocolVersion::V2,
        cipher: CipherKind::AesGcm,
    }
}

fn key(byte: u8) -> FernetKey {
    FernetKey::from_bytes(&[byte; 32])
}

/// Mints a token from a raw JSON payload, to test how odd payloads are judged.
fn raw_token(json: &str) -> String {
    key(1).seal(json.as_bytes(), 0, &[9; 16])
}

#[test]
fn mint_reproduces_every_recorded_token() {
    for v in test_vectors::all() {
        let key = FernetKey::parse(&v.fernet_key).unwrap();
        let claims = verify_token(v.token.as_bytes(), std::slice::from_ref(&key), at(NOW)).unwrap();
        assert_eq!(claims.hostname.as_str(), "a.example.test", "{}", v.name);
        assert_eq!(claims.cipher, v.cipher(), "{}", v.name);
        assert_eq!(claims.protocol_version, v.version(), "{}", v.name);
        assert_eq!(claims.aes_key, v.key());
        assert_eq!(claims.aes_iv, v.iv());
        assert_eq!(payload::write(&claims), v.token_payload_json, "{}", v.name);
        let iv = hex::decode(&v.fernet_iv).unwrap();
        let minted = claims.mint(&key, v.fernet_time, &mut Scripted::new(&iv));
        assert_eq!(minted, v.token, "{}", v.name);
    }
}

#[test]
fn fernet_key_text_round_trips() {
    let text = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    assert_eq!(FernetKey::parse(text).unwrap().to_base64(), text);
    assert_eq!(
        FernetKey::parse(&format!(" {text}\n")).unwrap().to_base64(),
        text
    );
    for bad in [
        "",
        "AAEC",
        "not base64 at all!!",
        &text[..40],
        &format!("{text}AAAA"),
    ] {
        assert_eq!(FernetKey::parse(bad), Err(FernetKeyError), "{bad:?}");
    }
    let k = FernetKey::generate(&mut VectorPattern);
    assert_eq!(FernetKey::parse(&k.to_base64()).unwrap(), k);
    assert_eq!(format!("{k:?}"), "FernetKey(..)");
}

#[test]
fn any_listed_key_verifies_for_rotation() {
    let token = claims().mint(&key(2), NOW, &mut VectorPattern);
    assert!(verify_token(token.as_bytes(), &[key(1), key(2)], at(NOW)).is_ok());
    assert!(verify_token(token.as_bytes(), &[key(2)], at(NOW)).is_ok());
    assert_eq!(
        verify_token(token.as_bytes(), &[key(1), key(3)], at(NOW)),
        Err(TokenError::Fernet(FernetError::BadSignature))
    );
    assert_eq!(
        verify_token(token.as_bytes(), &[], at(NOW)),
        Err(TokenError::Fernet(FernetError::BadSignature))
    );
}

#[test]
fn expiry_is_checked_against_the_given_now() {
    let mut c = claims();
    c.valid = NOW as f64 + 0.5;
    let token = c.mint(&key(1), 0, &mut VectorPattern);
    assert!(verify_token(token.as_bytes(), &[key(1)], at(NOW)).is_ok());
    assert!(matches!(
        verify_token(token.as_bytes(), &[key(1)], at(NOW + 1)),
        Err(TokenError::Expired { .. })
    ));
    assert_eq!(
        c.expires_at(),
        UNIX_EPOCH + Duration::from_secs_f64(NOW as f64 + 0.5)
    );
}

#[test]
fn the_fernet_timestamp_is_ignored_as_in_snitun() {
    let token = claims().mint(&key(1), 0, &mut VectorPattern);
    assert!(verify_token(token.as_bytes(), &[key(1)], at(NOW)).is_ok());
    let token = claims().mint(&key(1), u64::MAX, &mut VectorPattern);
    assert!(verify_token(token.as_bytes(), &[key(1)], at(NOW)).is_ok());
}

#[test]
fn tampering_and_garbage_are_refused() {
    let token = claims().mint(&key(1), NOW, &mut VectorPattern);
    let mut tampered = token.clone().into_bytes();
    tampered[60] = if tampered[60] == b'A' { b'B' } else { b'A' };
    assert_eq!(
        verify_token(&tampered, &[key(1)], at(NOW)),
        Err(TokenError::Fernet(FernetError::BadSignature))
    );
    let check = |input: &[u8], want: FernetError| {
        assert_eq!(
            verify_token(input, &[key(1)], at(NOW)),
            Err(TokenError::Fernet(want)),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    };
    check(b"", FernetError::NotFernet);
    check(b"gA==", FernetError::NotFernet);
    check(b"not a token", FernetError::NotBase64);
    check(&token.as_bytes()[..token.len() - 4], FernetError::NotFernet);
    // Standard base64 (with + and /) is not the urlsafe alphabet Fernet uses.
    check(b"gA+/AAAA", FernetError::NotBase64);
}

#[test]
fn payload_fields_are_judged() {
    let ok = r#""hostname": "A.Example.Test.", "aes_key": "2020202020202020202020202020202020202020202020202020202020202020", "aes_iv": "40404040404040404040404040404040""#;
    let check = |json: String, want: Result<(), TokenError>| {
        let got = verify_token(raw_token(&json).as_bytes(), &[key(1)], at(NOW)).map(|_| ());
        assert_eq!(got, want, "{json}");
    };
    let bad_field = |field: &'static str| move |got: Result<TokenClaims, TokenError>| matches!(got, Err(TokenError::BadField { field: f, .. }) if f == field);
    check(format!(r#"{{"valid": 4102444800, {ok}}}"#), Ok(()));
    check(
        format!(r#"{{"valid": 4102444800, {ok}, "unknown": [1, 2]}}"#),
        Ok(()),
    );
    check(
        format!(r#"{{{ok}}}"#),
        Err(TokenError::MissingField("valid")),
    );
    check(
        format!(r#"{{"valid": null, {ok}}}"#),
        Err(TokenError::MissingField("valid")),
    );
    check(
        r#"{"valid": 4102444800}"#.into(),
        Err(TokenError::MissingField("hostname")),
    );
    check(
        format!(r#"{{"valid": 4102444800, {ok}, "protocol_version": 3}}"#),
        Err(TokenError::UnsupportedVersion(3)),
    );
    check(
        format!(r#"{{"valid": 4102444800, {ok}, "alias": ["ok.test", "bad name"]}}"#),
        Err(TokenError::BadHostname {
            name: "bad name".into(),
            error: crate::hostname::HostnameError::BadByte,
        }),
    );
    let aliases: Vec<String> = (0..=MAX_ALIASES)
        .map(|i| format!("\"h{i}.test\""))
        .collect();
    check(
        format!(
            r#"{{"valid": 4102444800, {ok}, "alias": [{}]}}"#,
            aliases.join(",")
        ),
        Err(TokenError::TooManyAliases(MAX_ALIASES + 1)),
    );
    let verify = |json: String| verify_token(raw_token(&json).as_bytes(), &[key(1)], at(NOW));
    assert!(bad_field("valid")(verify(format!(
        r#"{{"valid": "soon", {ok}}}"#
    ))));
    assert!(bad_field("aes_key")(verify(
        r#"{"valid": 4102444800, "hostname": "a.test", "aes_key": "2020", "aes_iv": "40404040404040404040404040404040"}"#.into()
    )));
    assert!(bad_field("aes_iv")(verify(
        r#"{"valid": 4102444800, "hostname": "a.test", "aes_key": "2020202020202020202020202020202020202020202020202020202020202020", "aes_iv": "zz"}"#.into()
    )));
    assert!(bad_field("protocol_version")(verify(format!(
        r#"{{"valid": 4102444800, {ok}, "protocol_version": "2"}}"#
    ))));
    assert!(bad_field("alias")(verify(format!(
        r#"{{"valid": 4102444800, {ok}, "alias": "b.test"}}"#
    ))));
    assert!(bad_field("hostname")(verify(
        r#"{"valid": 4102444800, "hostname": 7, "aes_key": "", "aes_iv": ""}"#.into()
    )));
    assert!(matches!(
        verify("[1, 2]".into()),
        Err(TokenError::NotJson(_))
    ));
    assert!(matches!(
        verify("\u{0}".into()),
        Err(TokenError::NotJson(_))
    ));

    let c = verify(format!(
        r#"{{"valid": 4102444800, {ok}, "alias": ["B.test."], "cipher": "aes-ctr"}}"#
    ))
    .unwrap();
    assert_eq!(
        c.hostname.as_str(),
        "a.example.test",
        "names are normalized"
    );
    assert_eq!(c.aliases[0].as_str(), "b.test");
    assert_eq!(
        c.cipher,
        CipherKind::AesCbc,
        "unknown ciphers fall back to CBC as in SniTun"
    );
    assert_eq!(c.protocol_version, ProtocolVersion::V0);
    assert_eq!(
        c.names().map(Hostname::as_str).collect::<Vec<_>>(),
        ["a.example.test", "b.test"]
    );
}

#[test]
fn debug_output_hides_the_key() {
    let text = format!("{:?}", claims());
    assert!(text.contains("a.example.test"));
    assert!(!text.contains("32, 32") && !text.contains("2020"), "{text}");
}

#[test]
fn framing_waits_for_every_prefix_of_every_recorded_token() {
    for v in test_vectors::all() {
        let keys = [FernetKey::parse(&v.fernet_key).unwrap()];
        let token = v.token.as_bytes();
        for end in 0..token.len() {
            assert_eq!(
                frame_token(&token[..end], &keys),
                Ok(Peek::NeedMore),
                "{} prefix {end}",
                v.name
            );
        }
        assert_eq!(
            frame_token(token, &keys),
            Ok(Peek::Complete(TokenFraming { len: token.len() })),
            "{}",
            v.name
        );
    }
}

#[test]
fn framing_refuses_what_cannot_become_a_token() {
    let keys = [key(1)];
    let padded = claims().mint(&key(1), 0, &mut VectorPattern); // 376 bytes, ends in "="
    assert!(padded.ends_with('='));
    let check = |input: &[u8], want: Result<Peek<TokenFraming>, FernetError>| {
        assert_eq!(
            frame_token(input, &keys),
            want,
            "{:?}",
            String::from_utf8_lossy(input)
        );
    };
    check(b"\x16\x03\x01", Ok(Peek::NotThisProtocol));
    check(b"GET / HTTP/1.1", Ok(Peek::NotThisProtocol));
    check(b"gB", Ok(Peek::NotThisProtocol));
    check(b"g", Ok(Peek::NeedMore));
    check(b"gA\r\n", Err(FernetError::NotBase64));
    check(b"gAAAAA==A", Err(FernetError::NotBase64));
    check(b"gAA===", Err(FernetError::NotBase64));
    check(b"gAAAA=", Err(FernetError::NotBase64));
    check(b"gAAAAAA=", Err(FernetError::NotFernet));
    check(
        &[b'g', b'A'].repeat(MAX_TOKEN_LEN),
        Err(FernetError::NotBase64),
    );
    // A finished (padded) token under a foreign key is refused at once.
    let foreign = claims().mint(&key(2), 0, &mut VectorPattern);
    check(foreign.as_bytes(), Err(FernetError::BadSignature));
    // A token followed by anything is not a token.
    check(format!("{padded}g").as_bytes(), Err(FernetError::NotBase64));
    check(
        padded.as_bytes(),
        Ok(Peek::Complete(TokenFraming { len: padded.len() })),
    );
}

fn arb_hostname() -> impl Strategy<Value = Hostname> {
    proptest::string::string_regex(
        "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\\.[a-z][a-z0-9]{0,10}){1,3}",
    )
    .unwrap()
    .prop_map(|s| s.parse().unwrap())
}

prop_compose! {
    fn arb_claims()(
        valid in 0.0f64..4e9,
        hostname in arb_hostname(),
        aliases in proptest::collection::vec(arb_hostname(), 0..4),
        aes_key in any::<[u8; 32]>(),
        aes_iv in any::<[u8; 16]>(),
        version in 0u64..=2,
        cipher in prop_oneof![Just(CipherKind::AesCbc), Just(CipherKind::AesGcm), Just(CipherKind::AesGcmSiv)],
    ) -> TokenClaims {
        TokenClaims {
            valid, hostname, aliases, aes_key, aes_iv,
            protocol_version: ProtocolVersion::from_number(version).unwrap(),
            cipher,
        }
    }
}

proptest! {
    #[test]
    fn mint_then_verify_round_trips(c in arb_claims(), seed in any::<[u8; 16]>(), t in 0u64..(1 << 60)) {
        let token = c.mint(&key(7), t, &mut Scripted::new(&seed));
        let back = verify_token(token.as_bytes(), &[key(3), key(7)], at(0)).unwrap();
        prop_assert_eq!(back, c);
        prop_assert_eq!(
            frame_token(token.as_bytes(), &[key(7)]),
            Ok(Peek::Complete(TokenFraming { len: token.len() }))
        );
    }

    #[test]
    fn framing_never_refuses_a_prefix(c in arb_claims(), cut in 0usize..2000) {
        let token = c.mint(&key(7), 0, &mut VectorPattern);
        let cut = cut % token.len();
        prop_assert_eq!(frame_token(&token.as_bytes()[..cut], &[key(7)]), Ok(Peek::NeedMore));
    }

    #[test]
    fn garbage_never_panics(input in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = frame_token(&input, &[key(1)]);
        let _ = verify_token(&input, &[key(1)], at(0));
    }
}
