//! Whatever a client sends, the answer is a 2xx or a 4xx with a JSON reason: never a 5xx,
//! never a panic (the router is driven without sockets, so thousands of requests are cheap).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, header};
use proptest::prelude::*;
use sluice_proto::token::FernetKey;
use tower::ServiceExt;

use super::*;
use crate::accounts::{JwtKeys, Lifetimes};
use crate::config::DEFAULT_THROTTLING;
use crate::store::SqliteStore;

const PATHS: [&str; 12] = [
    "/.well-known/service-discovery",
    "/account/payments/subscription_info",
    "/auth/refresh",
    "/auth/login",
    "/instance/connection",
    "/instance/remote_ping_targets",
    "/instance/register",
    "/instance/snitun_token",
    "/instance/version_override",
    "/instance/dns_challenge_txt",
    "/websocket",
    "/%ff/../x",
];

struct Rig {
    rt: tokio::runtime::Runtime,
    app: Router,
    id_token: String,
}

fn rig() -> Rig {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (app, id_token) = rt.block_on(async {
        let store = Arc::new(SqliteStore::in_memory().await.unwrap());
        let accounts = Accounts::new(
            store.clone(),
            JwtKeys::from_secret(&[5; 32]).unwrap(),
            Lifetimes::default(),
        );
        accounts
            .add("p@example.test", "long enough", "test")
            .await
            .unwrap();
        let id_token = accounts
            .token_set_for("p@example.test", None)
            .await
            .unwrap()
            .id_token;
        let key = FernetKey::generate(&mut rand::rngs::OsRng);
        let shared = Arc::new(Shared {
            versions: Versions::new(store),
            relayer: Relayer::new(),
            logins: Default::default(),
            accounts,
            issuer: std::sync::RwLock::new(Issuer::new(&[key]).unwrap()),
            zone: "ui.example.test".parse().unwrap(),
            edge: "edge.example.test".parse().unwrap(),
            ping_edges: Vec::new(),
            public_host: None,
            tunnel_token_validity: Duration::from_secs(3600),
            throttling: DEFAULT_THROTTLING,
            edge_protocol: ProtocolVersion::V2,
            ha: HaThresholds::default(),
        });
        (router(shared), id_token)
    });
    Rig { rt, app, id_token }
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        proptest::collection::vec(any::<u8>(), 0..256),
        Just(br#"{"aes_key": "00", "aes_iv": "11"}"#.to_vec()),
        Just(
            format!(
                r#"{{"aes_key": "{}", "aes_iv": "{}"}}"#,
                "ab".repeat(32),
                "cd".repeat(16)
            )
            .into_bytes()
        ),
        Just(br#"{"protocol_version": 18446744073709551615, "cipher": "aes-gcm-siv"}"#.to_vec()),
        Just(br#"{"protocol_version": -1, "cipher": 7}"#.to_vec()),
        Just(br#"{"ping_result": [{"ip": 1}]}"#.to_vec()),
        Just(br#"{"refresh_token": "a.b.c"}"#.to_vec()),
        Just(br#"{"accept_risk": true}"#.to_vec()),
        Just(br#"{"email": "p@example.test", "password": "wrong one!"}"#.to_vec()),
        Just(vec![b'{'; MAX_BODY_LEN + 1]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]
    #[test]
    fn no_request_gets_a_server_error(
        path in proptest::sample::select(&PATHS[..]),
        post in any::<bool>(),
        body in body(),
        content_type in proptest::sample::select(&["application/json", "text/plain", "", "application/json; charset=utf-8"][..]),
        auth in 0u8..4,
        agent in proptest::sample::select(&["HomeAssistant/2026.3.0 aiohttp/3", "HomeAssistant/x", "sluice/0.1", ""][..]),
        host in proptest::sample::select(&["master.example.test:8443", "bad host", "", "[::1]:1"][..]),
    ) {
        static RIG: std::sync::OnceLock<std::sync::Mutex<Rig>> = std::sync::OnceLock::new();
        let rig = RIG.get_or_init(|| std::sync::Mutex::new(rig())).lock().unwrap();
        let mut req = Request::builder()
            .method(if post { "POST" } else { "GET" })
            .uri(path);
        if !content_type.is_empty() {
            req = req.header(header::CONTENT_TYPE, content_type);
        }
        if !agent.is_empty() {
            req = req.header(header::USER_AGENT, agent);
        }
        if !host.is_empty() {
            req = req.header(header::HOST, host);
        }
        req = match auth {
            0 => req,
            1 => req.header(header::AUTHORIZATION, format!("Bearer {}", rig.id_token)),
            2 => req.header(header::AUTHORIZATION, "Bearer eyJhbGciOiJub25lIn0.e30."),
            _ => req.header(header::AUTHORIZATION, rig.id_token.clone()),
        };
        let req = req.body(Body::from(body)).unwrap();
        let (status, json) = rig.rt.block_on(async {
            let resp = rig.app.clone().oneshot(req).await.unwrap();
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
            (status, serde_json::from_slice::<serde_json::Value>(&bytes))
        });
        prop_assert!(status.as_u16() < 500, "{status} for {path}");
        let json = json.expect("every answer is JSON");
        if !status.is_success() {
            prop_assert!(json["reason"].is_string(), "{json}");
            prop_assert!(json.get("message").is_none());
        }
    }
}
