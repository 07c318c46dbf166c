//! A master on 127.0.0.1:0 over HTTPS with the test CA, a real HTTPS client that trusts only
//! that CA, and an account with its token set.

use std::net::SocketAddr;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
use serde_json::Value;
use sluice_master::config::server_tls;
use sluice_master::{Accounts, EdgeAddress, Master, MasterConfig, MasterHandle, TokenSet};
use sluice_proto::token::FernetKey;
use sluice_testkit::TestCa;

/// The master's name in its certificate (the client resolves it to loopback).
pub const MASTER_HOST: &str = "master.sluice.test";
/// The zone instances are named in.
pub const ZONE: &str = "ui.sluice.test";
/// What Home Assistant 2026.3 sends.
pub const HA_AGENT: &str = "HomeAssistant/2026.3.0 aiohttp/3.14.5 Python/3.14";
/// What Sluice's connector sends.
pub const SLUICE_AGENT: &str = "sluice/0.1.0";
pub const EMAIL: &str = "owner@example.test";

pub struct Fixture {
    pub master: MasterHandle,
    pub client: reqwest::Client,
    pub base: String,
    pub tokens: TokenSet,
    pub state_dir: tempfile::TempDir,
    pub ca: TestCa,
}

impl Fixture {
    /// A master sending instances to `edge`, minting with `fernet`, `tweak` applied to its
    /// configuration, and one account (added and tokened as the CLI does: through `Accounts`
    /// on the state directory, before the master starts).
    pub async fn start(
        edge: EdgeAddress,
        fernet: FernetKey,
        tweak: impl FnOnce(&mut MasterConfig),
    ) -> Self {
        let ca = TestCa::new().unwrap();
        let leaf = ca.leaf(&[MASTER_HOST]).unwrap();
        let state_dir = tempfile::tempdir().unwrap();
        let tokens = {
            let accounts = Accounts::open(state_dir.path(), Default::default())
                .await
                .unwrap();
            accounts.add(EMAIL, "a long password", "cli").await.unwrap();
            accounts.token_set_for(EMAIL, None).await.unwrap()
        };
        let mut config = MasterConfig::new(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            server_tls(vec![leaf.cert_der()], leaf.key_der()).unwrap(),
            ZONE.parse().unwrap(),
            edge,
            vec![fernet],
            state_dir.path().to_owned(),
        );
        tweak(&mut config);
        let master = Master::start(config).await.unwrap();
        let client = reqwest::Client::builder()
            .use_preconfigured_tls((*ca.client_config().unwrap()).clone())
            .resolve(MASTER_HOST, master.local_addr())
            .build()
            .unwrap();
        let base = format!("https://{MASTER_HOST}:{}", master.local_addr().port());
        Self {
            master,
            client,
            base,
            tokens,
            state_dir,
            ca,
        }
    }

    pub fn accounts(&self) -> &Accounts {
        self.master.accounts()
    }

    /// A request as Home Assistant's client makes it: JSON headers, the id token as bearer.
    pub fn call(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.call_as(method, path, HA_AGENT, "application/json")
    }

    /// The same with another `User-Agent` and `Content-Type`.
    pub fn call_as(
        &self,
        method: reqwest::Method,
        path: &str,
        agent: &str,
        content_type: &str,
    ) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.base))
            .header(AUTHORIZATION, format!("Bearer {}", self.tokens.id_token))
            .header(CONTENT_TYPE, content_type)
            .header("accept", "application/json")
            .header(USER_AGENT, agent)
    }
}

/// Sends and returns the status and the JSON body.
pub async fn send(req: reqwest::RequestBuilder) -> (u16, Value) {
    let resp = req.send().await.expect("the request is answered");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status} {text:?}: {e}"));
    (status, json)
}

/// Sends, expects `status`, and that the body is `{"reason": ...}` (never `message`); returns
/// the reason.
pub async fn refused(req: reqwest::RequestBuilder, status: u16) -> String {
    let (got, body) = send(req).await;
    assert_eq!(got, status, "{body}");
    assert!(body.get("message").is_none(), "{body}");
    body["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason in {body}"))
        .to_owned()
}
