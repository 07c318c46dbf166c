use super::*;
use std::time::Duration;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

async fn accounts() -> Accounts {
    let store = SqliteStore::in_memory().await.unwrap();
    Accounts::new(
        Arc::new(store),
        JwtKeys::from_secret(&[3; 32]).unwrap(),
        Lifetimes::default(),
    )
}

#[test]
fn emails_are_normalized_and_checked() {
    assert_eq!(
        normalize_email(" A@Example.Test ").unwrap(),
        "a@example.test"
    );
    for bad in [
        "",
        "a",
        "@example.test",
        "a@",
        "a@b",
        "a b@example.test",
        "a@@example.test",
    ] {
        assert!(normalize_email(bad).is_err(), "{bad:?}");
    }
    assert!(normalize_email(&format!("{}@example.test", "a".repeat(250))).is_err());
}

#[test]
fn an_added_account_signs_in_and_gets_tokens_that_authenticate() {
    rt().block_on(async {
        let a = accounts().await;
        let added = a
            .add("User@Example.Test", "long enough", "cli")
            .await
            .unwrap();
        assert_eq!(added.email, "user@example.test");
        assert!(matches!(
            a.add("u@example.test", "short", "cli").await,
            Err(AccountError::BadPassword)
        ));
        assert!(
            a.check_password("user@example.test", "long enough")
                .await
                .is_ok()
        );
        assert!(matches!(
            a.check_password("user@example.test", "wrong one!").await,
            Err(AccountError::WrongCredentials)
        ));
        let set = a.token_set_for("user@example.test", None).await.unwrap();
        let who = a.authenticate(&set.id_token, TokenUse::Id).await.unwrap();
        assert_eq!(who.id, added.id);
        assert!(
            a.authenticate(&set.access_token, TokenUse::Access)
                .await
                .is_ok()
        );
        assert!(matches!(
            a.authenticate(&set.refresh_token, TokenUse::Id).await,
            Err(AccountError::Token(JwtError::WrongUse(_)))
        ));
        assert!(matches!(
            a.token_set_for("nobody@example.test", None).await,
            Err(AccountError::Store(StoreError::NoAccount(_)))
        ));
    });
}

#[test]
fn refresh_rotates_and_refuses_a_replay() {
    rt().block_on(async {
        let a = accounts().await;
        a.add("u@example.test", "long enough", "cli").await.unwrap();
        let first = a.token_set_for("u@example.test", None).await.unwrap();
        let second = a.refresh(&first.refresh_token).await.unwrap();
        assert_ne!(second.refresh_token, first.refresh_token);
        assert!(a.authenticate(&second.id_token, TokenUse::Id).await.is_ok());
        assert!(matches!(
            a.refresh(&first.refresh_token).await,
            Err(AccountError::Replayed)
        ));
        // The replay revoked the family: the rotated token is dead too.
        assert!(a.refresh(&second.refresh_token).await.is_err());
        assert!(
            a.refresh(&first.id_token).await.is_err(),
            "an id token is no refresh token"
        );
    });
}

#[test]
fn a_disabled_account_is_refused_and_expired_tokens_too() {
    rt().block_on(async {
        let a = accounts().await;
        let added = a.add("u@example.test", "long enough", "cli").await.unwrap();
        let set = a.token_set_for("u@example.test", None).await.unwrap();
        let old = a.sign_unrecorded(&added, SystemTime::now() - Duration::from_secs(7200));
        assert!(matches!(
            a.authenticate(&old.id_token, TokenUse::Id).await,
            Err(AccountError::Token(JwtError::Expired))
        ));
        a.disable("u@example.test", "cli").await.unwrap();
        assert!(matches!(
            a.authenticate(&set.id_token, TokenUse::Id).await,
            Err(AccountError::Disabled)
        ));
        assert!(a.refresh(&set.refresh_token).await.is_err());
        assert!(matches!(
            a.token_set_for("u@example.test", None).await,
            Err(AccountError::Disabled)
        ));
    });
}
