//! account -> token -> service discovery -> register -> snitun_token, and the token is
//! accepted by a real edge: a test tunnel peer with that token gets its name routed.

use std::net::SocketAddr;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use rand::RngCore;
use reqwest::Method;
use serde_json::json;
use sluice_edge::{EdgeConfig, EdgeHandle, RouteEvent};
use sluice_master::EdgeAddress;
use sluice_proto::Hostname;
use sluice_proto::crypto::CipherKind;
use sluice_proto::token::{Credentials, FernetKey, TokenClaims, verify_token};
use sluice_proto::version::ProtocolVersion;
use sluice_testkit::tunnel_peer::{Creds, TestPeer};

use crate::support::*;

fn edge() -> (EdgeHandle, FernetKey) {
    let key = FernetKey::generate(&mut rand::rngs::OsRng);
    let edge = sluice_edge::start(EdgeConfig::for_keys(vec![key.clone()])).expect("edge starts");
    (edge, key)
}

fn edge_address(edge: &EdgeHandle) -> EdgeAddress {
    let addr = edge.listen_addrs()[0];
    EdgeAddress {
        host: addr.ip().to_string(),
        port: addr.port(),
    }
}

/// Waits (bounded) until the edge routes `name`.
fn claimed(events: &Receiver<RouteEvent>, name: &str) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        match events.recv_timeout(left) {
            Ok(RouteEvent::Claimed { names, .. }) if names[0].as_str() == name => return true,
            Ok(_) => {}
            Err(_) => return false,
        }
    }
    false
}

/// A listener nobody reads from: the tunnel needs a target, the test sends no browser.
fn target() -> (std::net::TcpListener, SocketAddr) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_assistant_flow_mints_a_token_the_edge_accepts() {
    let (edge, key) = edge();
    let fx = Fixture::start(edge_address(&edge), key, |c| {
        c.ha.v1_from = Some("2025.1.0".parse().unwrap());
    })
    .await;

    // Discovery: every action, every URL at this master.
    let (status, doc) = send(fx.call(Method::GET, "/.well-known/service-discovery")).await;
    assert_eq!(status, 200);
    let actions = doc["actions"].as_object().unwrap();
    assert_eq!(actions.len(), 24);
    let https = format!("https://{MASTER_HOST}:{}/", fx.master.local_addr().port());
    let wss = format!("wss://{MASTER_HOST}:{}/", fx.master.local_addr().port());
    for (name, url) in actions {
        let url = url.as_str().unwrap();
        assert!(
            url.starts_with(&https) || url.starts_with(&wss),
            "{name}: {url}"
        );
    }
    assert!(doc["valid_for"].as_u64().unwrap() > 0);
    let path = |action: &str| actions[action].as_str().unwrap()[https.len() - 1..].to_owned();

    let (status, sub) = send(fx.call(Method::GET, &path("subscription_info"))).await;
    assert_eq!(status, 200);
    assert!(
        sub["billing_plan_type"]
            .as_str()
            .is_some_and(|p| p != "no_subscription")
    );
    assert!(sub.get("provider").is_none());

    let (status, conn) = send(
        fx.client
            .get(format!("{}{}", fx.base, path("instance_connection")))
            .header("authorization", &fx.tokens.access_token),
    )
    .await;
    assert_eq!((status, conn), (200, json!({"connected": false})));

    let (status, ping) = send(fx.call(Method::GET, &path("remote_access_ping_targets"))).await;
    assert_eq!(
        (status, ping["targets"].as_array().unwrap().len()),
        (200, 0)
    );

    // Register with no body (as after a failed ping), then with ping results: same name.
    let (status, reg) = send(fx.call(Method::POST, &path("remote_access_register"))).await;
    assert_eq!(status, 200, "{reg}");
    let domain = reg["domain"].as_str().unwrap().to_owned();
    assert!(domain.ends_with(&format!(".{ZONE}")), "{domain}");
    assert_eq!(reg["email"], EMAIL);
    assert_eq!(reg["server"], edge.listen_addrs()[0].ip().to_string());
    assert_eq!(reg["alias"], json!([]));
    let pings = json!({"ping_result": [{"ip": "127.0.0.1", "avg": 1.5, "max": 2.0, "min": 1.0, "reachable": true}]});
    let (_, again) = send(
        fx.call(Method::POST, &path("remote_access_register"))
            .json(&pings),
    )
    .await;
    assert_eq!(again["domain"], domain.as_str(), "the name is stable");

    // The token, as Home Assistant asks for it: its own key and IV.
    let mut aes_key = [0u8; 32];
    let mut aes_iv = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut aes_key);
    rand::rngs::OsRng.fill_bytes(&mut aes_iv);
    let body = json!({"aes_key": hex::encode(aes_key), "aes_iv": hex::encode(aes_iv)});
    let (status, tok) = send(
        fx.call(Method::POST, &path("remote_access_snitun_token"))
            .json(&body),
    )
    .await;
    assert_eq!(status, 200, "{tok}");
    assert_eq!(tok["throttling"], 400);
    assert_eq!(
        tok["protocol_version"], 1,
        "HA 2026.3 is past v1_from, no v2_from is set"
    );
    assert_eq!(tok["cipher"], "aes-cbc");
    let valid = tok["valid"].as_u64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        valid > now && valid <= now + 3 * 3600 + 1,
        "valid {valid}, hours"
    );

    // What the client knows, built as hass-nabucasa builds it: its keys, the domain from
    // register, the reply's version.
    let creds = Creds {
        token: tok["token"].as_str().unwrap().to_owned(),
        claims: TokenClaims {
            valid: valid as f64,
            hostname: Hostname::parse(domain.as_bytes()).unwrap(),
            aliases: Vec::new(),
            aes_key,
            aes_iv,
            protocol_version: ProtocolVersion::V1,
            cipher: CipherKind::AesCbc,
        },
    };
    let events = edge.route_events();
    let (_target, at) = target();
    let peer = TestPeer::connect(edge.listen_addrs()[0], &creds, at).expect("handshake");
    assert!(claimed(&events, &domain), "the edge routes {domain}");
    peer.kill();
    fx.master.shutdown().await.unwrap();
    edge.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sluice_asks_for_v2_aes_gcm_siv_and_gets_a_credentials_document() {
    let (edge, key) = edge();
    let fx = Fixture::start(edge_address(&edge), key, |_| {}).await;
    let (status, _) = send(fx.call(Method::POST, "/instance/register")).await;
    assert_eq!(status, 200);
    let (status, reg) = send(fx.call_as(
        Method::POST,
        "/instance/register",
        SLUICE_AGENT,
        "application/json",
    ))
    .await;
    assert_eq!(
        (status, reg["server_port"].as_u64()),
        (200, Some(u64::from(edge.listen_addrs()[0].port())))
    );

    let text = fx
        .call_as(
            Method::POST,
            "/instance/snitun_token",
            SLUICE_AGENT,
            "application/json",
        )
        .json(&json!({"protocol_version": 2, "cipher": "aes-gcm-siv"}))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let creds = Credentials::from_json(&text).expect("the reply is a credentials document");
    let claims = creds.claims().clone();
    assert_eq!(claims.protocol_version, ProtocolVersion::V2);
    assert_eq!(claims.cipher, CipherKind::AesGcmSiv);
    let events = edge.route_events();
    let (_target, at) = target();
    let peer_creds = Creds {
        token: creds.token().to_owned(),
        claims,
    };
    let peer = TestPeer::connect(edge.listen_addrs()[0], &peer_creds, at).expect("handshake");
    assert!(claimed(&events, reg["domain"].as_str().unwrap()));
    peer.kill();
    fx.master.shutdown().await.unwrap();
    edge.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reloaded_key_file_mints_with_its_first_key() {
    let old = FernetKey::generate(&mut rand::rngs::OsRng);
    let new = FernetKey::generate(&mut rand::rngs::OsRng);
    let edge = EdgeAddress {
        host: "edge.sluice.test".into(),
        port: 443,
    };
    let fx = Fixture::start(edge, old.clone(), |_| {}).await;
    assert_eq!(
        send(fx.call(Method::POST, "/instance/register")).await.0,
        200
    );
    let keys = json!({"aes_key": hex::encode([1u8; 32]), "aes_iv": hex::encode([2u8; 16])});
    let mint = || async {
        let (status, tok) = send(fx.call(Method::POST, "/instance/snitun_token").json(&keys)).await;
        assert_eq!(status, 200, "{tok}");
        tok["token"].as_str().unwrap().to_owned()
    };
    let now = std::time::SystemTime::now();
    let first = mint().await;
    assert!(verify_token(first.as_bytes(), std::slice::from_ref(&old), now).is_ok());
    assert!(
        fx.master.reload_keys(&[]).is_err(),
        "an empty key set is refused"
    );
    fx.master.reload_keys(&[new.clone(), old.clone()]).unwrap();
    let second = mint().await;
    assert!(verify_token(second.as_bytes(), std::slice::from_ref(&new), now).is_ok());
    assert!(verify_token(second.as_bytes(), std::slice::from_ref(&old), now).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_sends_the_instance_to_the_edge_it_reached_fastest() {
    let edge = EdgeAddress {
        host: "anycast.sluice.test".into(),
        port: 443,
    };
    let fx = Fixture::start(edge, FernetKey::generate(&mut rand::rngs::OsRng), |c| {
        for (i, ip) in ["127.0.0.2", "127.0.0.3"].iter().enumerate() {
            c.ping_edges.push(sluice_master::config::PingTarget {
                ip: ip.parse().unwrap(),
                location: format!("site {i}"),
                edge: format!("e{i}.sluice.test").parse().unwrap(),
            });
        }
    })
    .await;
    let (status, targets) = send(fx.call(Method::GET, "/instance/remote_ping_targets")).await;
    assert_eq!(status, 200);
    assert_eq!(
        targets["targets"],
        json!([{"ip": "127.0.0.2", "location": "site 0"}, {"ip": "127.0.0.3", "location": "site 1"}])
    );
    let pings = json!({"ping_result": [
        {"ip": "127.0.0.2", "avg": 30.0, "max": 31.0, "min": 29.0, "reachable": true},
        {"ip": "127.0.0.3", "avg": 5.0, "max": 6.0, "min": 4.0, "reachable": true},
    ]});
    let (_, reg) = send(fx.call(Method::POST, "/instance/register").json(&pings)).await;
    assert_eq!(reg["server"], "e1.sluice.test");
    let unreachable = json!({"ping_result": [
        {"ip": "127.0.0.3", "avg": 1.0, "reachable": false},
    ]});
    let (_, reg) = send(
        fx.call(Method::POST, "/instance/register")
            .json(&unreachable),
    )
    .await;
    assert_eq!(
        reg["server"], "anycast.sluice.test",
        "no reachable target: the default"
    );
}
