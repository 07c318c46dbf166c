//! The relayer websocket: the instance connects with its bearer, gets a first message, and
//! the master's questions reach it and come back with its answers.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use sluice_master::EdgeAddress;
use sluice_master::relayer::RelayError;
use sluice_proto::token::FernetKey;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::support::*;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>;

async fn dial(fx: &Fixture, bearer: &str) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
    let tcp = tokio::net::TcpStream::connect(fx.master.local_addr())
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(fx.ca.client_config().unwrap())
        .connect(MASTER_HOST.try_into().unwrap(), tcp)
        .await
        .unwrap();
    let url = format!(
        "wss://{MASTER_HOST}:{}/websocket",
        fx.master.local_addr().port()
    );
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {bearer}").parse().unwrap());
    request
        .headers_mut()
        .insert("user-agent", HA_AGENT.parse().unwrap());
    Ok(tokio_tungstenite::client_async(request, tls).await?.0)
}

async fn next_json(ws: &mut Ws) -> Value {
    let deadline = Duration::from_secs(10);
    loop {
        let msg = tokio::time::timeout(deadline, ws.next())
            .await
            .expect("a message within 10 s")
            .expect("the connection is open")
            .unwrap();
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

async fn connected(fx: &Fixture, account: &str) {
    let relayer = fx.master.relayer();
    for _ in 0..200 {
        if relayer.is_connected(account) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the relayer never saw the connection");
}

/// Asks `account`'s instance `remote_sni` in the background (10 s to answer), as the account
/// page's Connect button does.
fn ask_remote_sni(
    relayer: &sluice_master::relayer::Relayer,
    account: &str,
) -> tokio::task::JoinHandle<Result<Value, RelayError>> {
    let (relayer, account) = (relayer.clone(), account.to_owned());
    tokio::spawn(async move {
        relayer
            .ask(&account, "remote_sni", json!({}), Duration::from_secs(10))
            .await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn questions_reach_the_instance_and_its_answers_come_back() {
    let edge = EdgeAddress {
        host: "edge.sluice.test".into(),
        port: 443,
    };
    let fx =
        Arc::new(Fixture::start(edge, FernetKey::generate(&mut rand::rngs::OsRng), |_| {}).await);
    let account = fx.accounts().list().await.unwrap().remove(0).id;
    let relayer = fx.master.relayer().clone();
    assert_eq!(
        relayer
            .ask(&account, "remote_sni", json!({}), Duration::from_secs(1))
            .await,
        Err(RelayError::NotConnected)
    );

    let mut ws = dial(&fx, &fx.tokens.id_token).await.expect("upgraded");
    let first = next_json(&mut ws).await;
    assert_eq!(first["handler"], "system", "{first}");
    assert!(first["msgid"].is_string());
    connected(&fx, &account).await;

    // Home Assistant's "already connected?" check now sees this connection.
    let (status, conn) = send(
        fx.client
            .get(format!("{}/instance/connection", fx.base))
            .header("authorization", &fx.tokens.access_token),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(conn["connected"], true, "{conn}");
    assert_eq!(conn["details"]["version"], "2026.3.0");
    assert_eq!(conn["details"]["remote_ip_address"], "127.0.0.1");
    assert!(
        conn["details"]["connected_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );

    // The instance says something unasked: read and dropped.
    ws.send(Message::Text(
        json!({"msgid": "x", "handler": "webhook-register", "payload": {"cloudhook_ids": []}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();

    let asking = ask_remote_sni(&relayer, &account);
    let q = next_json(&mut ws).await;
    assert_eq!(q["handler"], "remote_sni", "{q}");
    ws.send(Message::Text(
        json!({"msgid": q["msgid"], "payload": {"server": "edge.sluice.test"}})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(
        asking.await.unwrap(),
        Ok(json!({"server": "edge.sluice.test"}))
    );

    let refusing = ask_remote_sni(&relayer, &account);
    let q = next_json(&mut ws).await;
    ws.send(Message::Text(
        json!({"msgid": q["msgid"], "error": "remote_activation_not_allowed"})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    assert_eq!(
        refusing.await.unwrap(),
        Err(RelayError::Refused("remote_activation_not_allowed".into()))
    );

    // A newer connection replaces this one; the old one is closed.
    let mut newer = dial(&fx, &fx.tokens.id_token).await.expect("upgraded");
    assert_eq!(next_json(&mut newer).await["handler"], "system");
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the replaced connection ends");
    drop(newer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_bearer_or_a_plain_get_is_refused_in_json() {
    let edge = EdgeAddress {
        host: "edge.sluice.test".into(),
        port: 443,
    };
    let fx = Fixture::start(edge, FernetKey::generate(&mut rand::rngs::OsRng), |_| {}).await;
    let err = dial(&fx, "not-a-token").await.unwrap_err();
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 401),
        other => panic!("{other}"),
    }
    let r = refused(fx.call(Method::GET, "/websocket"), 400).await;
    assert!(r.contains("websocket"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_block_asks_connected_instances_to_re_check() {
    let edge = EdgeAddress {
        host: "edge.sluice.test".into(),
        port: 443,
    };
    let fx = Fixture::start(edge, FernetKey::generate(&mut rand::rngs::OsRng), |c| {
        c.block_list_poll = Duration::from_millis(50);
    })
    .await;
    let account = fx.accounts().list().await.unwrap().remove(0).id;
    let mut ws = dial(&fx, &fx.tokens.id_token).await.expect("upgraded");
    assert_eq!(next_json(&mut ws).await["handler"], "system");
    connected(&fx, &account).await;
    // As `sluice master versions block` does from another process: straight into the store.
    sluice_master::Versions::new(fx.accounts().store().clone())
        .block("<=2020.1.1", "old", "cli")
        .await
        .unwrap();
    let q = next_json(&mut ws).await;
    assert_eq!(q["handler"], "cloud", "{q}");
    assert_eq!(q["payload"]["action"], "evaluate_remote_security");
}
