use super::*;
use proptest::prelude::*;

fn new_account(n: u32) -> NewAccount {
    NewAccount {
        id: format!("id{n}"),
        email: format!("user{n}@example.test"),
        password_hash: "$argon2id$stub".into(),
        subscription_expires: "2099-12-31".into(),
    }
}

fn by(at: u64) -> Actor<'static> {
    Actor { who: "test", at }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn refresh(jti: &str, account: &str, family: &str) -> RefreshRecord {
    RefreshRecord {
        jti: jti.into(),
        account_id: account.into(),
        family: family.into(),
        expires_at: 9_999_999_999,
    }
}

#[test]
fn accounts_are_added_found_listed_and_disabled_with_audit_entries() {
    rt().block_on(async {
        let store = SqliteStore::in_memory().await.unwrap();
        let a = store.add_account(new_account(1), by(10)).await.unwrap();
        assert!(!a.disabled);
        assert!(matches!(
            store.add_account(new_account(1), by(11)).await,
            Err(StoreError::AccountExists(_))
        ));
        assert_eq!(
            store.account_by_email("user1@example.test").await.unwrap(),
            Some(a.clone())
        );
        assert_eq!(store.account_by_id("id1").await.unwrap(), Some(a.clone()));
        assert_eq!(store.account_by_id("nobody").await.unwrap(), None);
        store.add_account(new_account(2), by(12)).await.unwrap();
        assert_eq!(store.accounts().await.unwrap().len(), 2);
        let d = store
            .disable_account("user1@example.test", by(13))
            .await
            .unwrap();
        assert_eq!(d.id, "id1");
        assert!(store.account_by_id("id1").await.unwrap().unwrap().disabled);
        assert!(matches!(
            store.disable_account("none@example.test", by(14)).await,
            Err(StoreError::NoAccount(_))
        ));
        let log = store.audit_log(10).await.unwrap();
        let actions: Vec<_> = log
            .iter()
            .map(|e| (e.action.as_str(), e.subject.as_str()))
            .collect();
        assert_eq!(
            actions,
            [
                ("account.disable", "user1@example.test"),
                ("account.add", "user2@example.test"),
                ("account.add", "user1@example.test"),
            ],
            "newest first; the refused duplicate left no entry"
        );
    });
}

#[test]
fn an_instance_name_is_stable_and_unique() {
    rt().block_on(async {
        let store = SqliteStore::in_memory().await.unwrap();
        store.add_account(new_account(1), by(1)).await.unwrap();
        store.add_account(new_account(2), by(1)).await.unwrap();
        let first = store
            .register_instance("id1", "i1", "alpha", by(2))
            .await
            .unwrap();
        let again = store
            .register_instance("id1", "i9", "beta", by(3))
            .await
            .unwrap();
        assert_eq!(first, again, "an account keeps its first name");
        assert_eq!(store.instance_of("id1").await.unwrap(), Some(first));
        assert!(matches!(
            store.register_instance("id2", "i2", "alpha", by(4)).await,
            Err(StoreError::NameTaken(_))
        ));
        assert_eq!(store.instance_of("id2").await.unwrap(), None);
        let log = store.audit_log(10).await.unwrap();
        assert_eq!(
            log.iter()
                .filter(|e| e.action == "instance.register")
                .count(),
            1
        );
    });
}

#[test]
fn a_refresh_token_rotates_once_and_a_replay_revokes_its_family() {
    rt().block_on(async {
        let store = SqliteStore::in_memory().await.unwrap();
        store.add_account(new_account(1), by(1)).await.unwrap();
        store.add_refresh(refresh("r1", "id1", "f")).await.unwrap();
        let rot = store
            .rotate_refresh("r1", refresh("r2", "id1", "ignored"), 5)
            .await;
        assert_eq!(rot.unwrap(), Rotation::Rotated);
        // The replay of r1 revokes r2 as well: the thief and the owner both sign in again.
        let rot = store
            .rotate_refresh("r1", refresh("r3", "id1", "f"), 6)
            .await;
        assert_eq!(rot.unwrap(), Rotation::Replayed);
        let rot = store
            .rotate_refresh("r2", refresh("r4", "id1", "f"), 7)
            .await;
        assert_eq!(rot.unwrap(), Rotation::Unknown);
        let rot = store
            .rotate_refresh("never", refresh("r5", "id1", "f"), 8)
            .await;
        assert_eq!(rot.unwrap(), Rotation::Unknown);
    });
}

#[test]
fn expired_refresh_tokens_are_swept() {
    rt().block_on(async {
        let store = SqliteStore::in_memory().await.unwrap();
        store.add_account(new_account(1), by(1)).await.unwrap();
        let expired = RefreshRecord {
            expires_at: 1,
            ..refresh("old", "id1", "f")
        };
        store.add_refresh(expired).await.unwrap();
        store.add_refresh(refresh("new", "id1", "g")).await.unwrap();
        let rot = store
            .rotate_refresh("old", refresh("x", "id1", "f"), 5)
            .await;
        assert_eq!(rot.unwrap(), Rotation::Unknown, "swept");
        let rot = store
            .rotate_refresh("new", refresh("y", "id1", "g"), 5)
            .await;
        assert_eq!(rot.unwrap(), Rotation::Rotated);
    });
}

#[test]
fn disabling_revokes_refresh_tokens() {
    rt().block_on(async {
        let store = SqliteStore::in_memory().await.unwrap();
        store.add_account(new_account(1), by(1)).await.unwrap();
        store.add_refresh(refresh("r1", "id1", "f")).await.unwrap();
        store
            .disable_account("user1@example.test", by(2))
            .await
            .unwrap();
        let rot = store
            .rotate_refresh("r1", refresh("r2", "id1", "f"), 3)
            .await;
        assert_eq!(rot.unwrap(), Rotation::Unknown);
    });
}

#[test]
fn what_was_acknowledged_is_there_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    rt().block_on(async {
        let store = SqliteStore::open(dir.path()).await.unwrap();
        store.add_account(new_account(1), by(1)).await.unwrap();
        store
            .register_instance("id1", "i1", "alpha", by(2))
            .await
            .unwrap();
        // While it is open (a write made the WAL), every file is owner-only.
        use std::os::unix::fs::PermissionsExt;
        for file in ["master.db", "master.db-wal"] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "{file} is owner-only");
        }
    });
    rt().block_on(async {
        let store = SqliteStore::open(dir.path()).await.unwrap();
        assert!(store.account_by_id("id1").await.unwrap().is_some());
        assert_eq!(
            store.instance_of("id1").await.unwrap().unwrap().name,
            "alpha"
        );
    });
}

#[test]
fn a_new_block_clears_overrides_and_every_step_is_audited() {
    rt().block_on(async {
        let store = SqliteStore::in_memory().await.unwrap();
        store.add_account(new_account(1), by(1)).await.unwrap();
        let inst = store
            .register_instance("id1", "i1", "alpha", by(2))
            .await
            .unwrap();
        assert!(
            store
                .block_version("<=2021.1.4", "CVE-1", by(3))
                .await
                .unwrap()
                .is_empty()
        );
        store
            .set_override(&inst.id, &inst.name, by(4))
            .await
            .unwrap();
        assert!(store.has_override(&inst.id).await.unwrap());
        // The same spec again only changes its reason: the override stays.
        assert!(
            store
                .block_version("<=2021.1.4", "CVE-1, CVE-2", by(5))
                .await
                .unwrap()
                .is_empty()
        );
        assert!(store.has_override(&inst.id).await.unwrap());
        let cleared = store
            .block_version("==2022.2.2", "CVE-3", by(6))
            .await
            .unwrap();
        assert_eq!(cleared, ["alpha"]);
        assert!(!store.has_override(&inst.id).await.unwrap());
        let blocks = store.blocked_versions().await.unwrap();
        assert_eq!(blocks.len(), 2);
        assert_eq!(blocks[0].reason, "CVE-1, CVE-2");
        assert!(store.unblock_version("==2022.2.2", by(7)).await.unwrap());
        assert!(!store.unblock_version("==2022.2.2", by(8)).await.unwrap());
        let log = store.audit_log(20).await.unwrap();
        let actions: Vec<_> = log.iter().rev().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "account.add",
                "instance.register",
                "version.block",
                "override.set",
                "version.reason",
                "version.block",
                "override.cleared",
                "version.unblock",
            ]
        );
    });
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    /// Whatever order accounts come and names collide in, every account ends up with at most
    /// one name, no two accounts share one, and the audit log has one entry per change.
    #[test]
    fn names_stay_unique_and_audited(ops in proptest::collection::vec((0u32..4, 0u32..4), 1..24)) {
        rt().block_on(async {
            let store = SqliteStore::in_memory().await.unwrap();
            for n in 0..4 {
                store.add_account(new_account(n), by(1)).await.unwrap();
            }
            let mut registered = std::collections::BTreeMap::new();
            for (i, (account, name)) in ops.iter().enumerate() {
                let id = format!("id{account}");
                let name = format!("n{name}");
                match store.register_instance(&id, &format!("i{i}"), &name, by(2)).await {
                    Ok(inst) => {
                        let prev = registered.insert(id.clone(), inst.name.clone());
                        assert!(prev.is_none() || prev.as_deref() == Some(inst.name.as_str()));
                    }
                    Err(StoreError::NameTaken(_)) => {
                        assert!(registered.values().any(|n| *n == name));
                        assert!(!registered.contains_key(&id));
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            let names: std::collections::BTreeSet<_> = registered.values().collect();
            assert_eq!(names.len(), registered.len(), "no name shared");
            let log = store.audit_log(100).await.unwrap();
            let regs = log.iter().filter(|e| e.action == "instance.register").count();
            assert_eq!(regs, registered.len());
        });
    }
}
