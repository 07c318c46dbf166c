//! The block list on the wire: 409 on `snitun_token` for a blocked Home Assistant (and
//! nothing else refused), the owner's override, and a new block clearing it.

use reqwest::Method;
use serde_json::json;
use sluice_master::EdgeAddress;
use sluice_proto::token::FernetKey;

use crate::support::*;

fn keys() -> serde_json::Value {
    json!({"aes_key": hex::encode([1u8; 32]), "aes_iv": hex::encode([2u8; 16])})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_version_gets_409_until_overridden_and_a_new_block_clears_the_override() {
    let edge = EdgeAddress {
        host: "edge.sluice.test".into(),
        port: 443,
    };
    let fx = Fixture::start(edge, FernetKey::generate(&mut rand::rngs::OsRng), |_| {}).await;
    let token = |agent: &'static str| {
        fx.call_as(
            Method::POST,
            "/instance/snitun_token",
            agent,
            "application/json",
        )
        .json(&keys())
    };
    let (status, _) = send(fx.call(Method::POST, "/instance/register")).await;
    assert_eq!(status, 200);
    assert_eq!(send(token(HA_AGENT)).await.0, 200, "nothing blocked yet");

    fx.master
        .versions()
        .block("<=2026.3.0", "remote code execution in the frontend", "cli")
        .await
        .unwrap();
    let r = refused(token(HA_AGENT), 409).await;
    assert!(
        r.contains("2026.3.0") && r.contains("remote code execution"),
        "{r}"
    );
    // Everything else keeps working, and other clients are not judged by it.
    assert_eq!(
        send(fx.call(Method::POST, "/instance/register")).await.0,
        200
    );
    assert_eq!(
        send(token("HomeAssistant/2026.4.0 aiohttp/3.14.5")).await.0,
        200
    );
    assert_eq!(send(token(SLUICE_AGENT)).await.0, 200);

    refused(
        fx.call(Method::POST, "/instance/version_override")
            .json(&json!({"accept_risk": false})),
        400,
    )
    .await;
    let (status, body) = send(
        fx.call(Method::POST, "/instance/version_override")
            .json(&json!({"accept_risk": true})),
    )
    .await;
    assert_eq!((status, body), (200, json!({"override": true})));
    assert_eq!(send(token(HA_AGENT)).await.0, 200, "overridden");

    let cleared = fx
        .master
        .versions()
        .block("==2020.1.1", "another hole", "cli")
        .await
        .unwrap();
    assert_eq!(cleared.len(), 1);
    refused(token(HA_AGENT), 409).await;

    let log = fx.accounts().store().audit_log(50).await.unwrap();
    let actions: Vec<_> = log.iter().map(|e| e.action.as_str()).collect();
    for action in ["version.block", "override.set", "override.cleared"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
}
