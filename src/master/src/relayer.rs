//! The relayer websocket (`relayer_connect`): each instance keeps one open, and the master
//! asks it things over it (Home Assistant's "IoT" messages): `remote_sni` to wake a tunnel,
//! `connection_info`, `cloud` actions such as `disconnect_remote`.
//!
//! Messages are JSON text frames. The master sends `{"msgid", "handler", "payload"}` and the
//! instance answers `{"msgid", "payload"}` or `{"msgid", "error"}`. The first message is a
//! `system` one (no answer expected): Home Assistant counts itself connected only once it has
//! a message from the server. One connection per account: a newer one replaces the older.
//! What the instance sends unasked (`webhook-register`) is read and dropped for now.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

/// The largest message read from an instance.
pub const MAX_MESSAGE_LEN: usize = 64 * 1024;
/// How long a connection may stay silent: Home Assistant pings every 300 s.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(660);
/// The most questions waiting for their answers on one connection.
pub const MAX_PENDING: usize = 64;
/// The region told in the first message (Home Assistant stores it as `relayer_region`).
pub const REGION: &str = "sluice";

/// Why a question to an instance got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// The account has no relayer connection.
    #[error("the instance is not connected to the relayer")]
    NotConnected,
    /// No answer in time, or the connection ended first.
    #[error("the instance did not answer")]
    NoAnswer,
    /// Too many questions are waiting on this connection.
    #[error("too many questions are waiting for this instance")]
    Busy,
    /// The instance answered with an error (`remote_activation_not_allowed`, ...).
    #[error("the instance refused: {0}")]
    Refused(String),
}

struct Question {
    handler: String,
    payload: Value,
    answer: oneshot::Sender<Result<Value, RelayError>>,
}

#[derive(Debug)]
struct Session {
    id: u64,
    questions: mpsc::Sender<Question>,
    peer: Peer,
}

/// Who is on the other end of a relayer connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// When it connected, Unix seconds.
    pub connected_at: u64,
    /// Its address, where the listener knew it.
    pub remote_ip: Option<std::net::IpAddr>,
    /// Its `User-Agent`, if it sent text.
    pub user_agent: Option<String>,
}

impl std::fmt::Debug for Question {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Question")
            .field("handler", &self.handler)
            .finish_non_exhaustive()
    }
}

/// The open relayer connections, by account.
#[derive(Debug, Clone, Default)]
pub struct Relayer {
    sessions: Arc<Mutex<HashMap<String, Session>>>,
    next_id: Arc<AtomicU64>,
}

fn msgid() -> String {
    crate::accounts::random_id()
}

impl Relayer {
    /// No connections.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the account's instance has a relayer connection.
    pub fn is_connected(&self, account_id: &str) -> bool {
        self.peer(account_id).is_some()
    }

    /// The accounts that hold a relayer connection.
    pub fn connected_accounts(&self) -> Vec<String> {
        self.sessions
            .lock()
            .expect("relayer sessions lock")
            .keys()
            .cloned()
            .collect()
    }

    /// Who holds the account's relayer connection, if anyone.
    pub fn peer(&self, account_id: &str) -> Option<Peer> {
        self.sessions
            .lock()
            .expect("relayer sessions lock")
            .get(account_id)
            .map(|s| s.peer.clone())
    }

    /// Asks the account's instance `handler` with `payload` and waits (at most `within`) for
    /// its answer.
    pub async fn ask(
        &self,
        account_id: &str,
        handler: &str,
        payload: Value,
        within: Duration,
    ) -> Result<Value, RelayError> {
        let questions = self
            .sessions
            .lock()
            .expect("relayer sessions lock")
            .get(account_id)
            .map(|s| s.questions.clone())
            .ok_or(RelayError::NotConnected)?;
        let (answer, answered) = oneshot::channel();
        let question = Question {
            handler: handler.to_owned(),
            payload,
            answer,
        };
        questions.try_send(question).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => RelayError::Busy,
            mpsc::error::TrySendError::Closed(_) => RelayError::NotConnected,
        })?;
        match tokio::time::timeout(within, answered).await {
            Ok(Ok(result)) => result,
            _ => Err(RelayError::NoAnswer),
        }
    }

    /// Serves one instance's connection until it closes, goes silent, or a newer one of the
    /// same account replaces it.
    pub(crate) async fn serve(&self, account_id: String, peer: Peer, mut socket: WebSocket) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (questions, mut asked) = mpsc::channel(MAX_PENDING);
        // The older session's sender is dropped here, which ends its pump.
        let replaced = self
            .sessions
            .lock()
            .expect("relayer sessions lock")
            .insert(
                account_id.clone(),
                Session {
                    id,
                    questions,
                    peer,
                },
            )
            .is_some();
        if replaced {
            tracing::info!(account = %account_id, "relayer connection replaced by a newer one");
        }
        let hello = json!({"msgid": msgid(), "handler": "system", "payload": {"region": REGION}});
        if socket
            .send(Message::Text(hello.to_string().into()))
            .await
            .is_ok()
        {
            self.pump(&mut socket, &mut asked).await;
        }
        let mut sessions = self.sessions.lock().expect("relayer sessions lock");
        if sessions.get(&account_id).is_some_and(|s| s.id == id) {
            sessions.remove(&account_id);
        }
    }

    async fn pump(&self, socket: &mut WebSocket, asked: &mut mpsc::Receiver<Question>) {
        let mut waiting: HashMap<String, oneshot::Sender<Result<Value, RelayError>>> =
            HashMap::new();
        loop {
            tokio::select! {
                question = asked.recv() => {
                    // None: a newer connection took this account's place.
                    let Some(q) = question else {
                        let _ = socket.send(Message::Close(None)).await;
                        return;
                    };
                    waiting.retain(|_, tx| !tx.is_closed());
                    if waiting.len() >= MAX_PENDING {
                        // Questions sent and not answered count against the cap too.
                        let _ = q.answer.send(Err(RelayError::Busy));
                        continue;
                    }
                    let id = msgid();
                    let text = json!({"msgid": id, "handler": q.handler, "payload": q.payload});
                    if socket.send(Message::Text(text.to_string().into())).await.is_err() {
                        let _ = q.answer.send(Err(RelayError::NoAnswer));
                        return;
                    }
                    waiting.insert(id, q.answer);
                }
                incoming = tokio::time::timeout(IDLE_TIMEOUT, socket.recv()) => {
                    let text = match incoming {
                        Ok(Some(Ok(Message::Text(t)))) => t,
                        Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                        // Binary frames are not part of the protocol; a close, an error or
                        // silence ends the connection.
                        _ => return,
                    };
                    let Ok(message) = serde_json::from_str::<Value>(text.as_str()) else {
                        tracing::debug!("relayer: a message that is not JSON, dropped");
                        continue;
                    };
                    let Some(tx) = message["msgid"].as_str().and_then(|m| waiting.remove(m)) else {
                        continue;
                    };
                    let result = match message.get("error") {
                        Some(e) => Err(RelayError::Refused(
                            e.as_str().map_or_else(|| e.to_string(), str::to_owned),
                        )),
                        None => Ok(message.get("payload").cloned().unwrap_or(Value::Null)),
                    };
                    let _ = tx.send(result);
                }
            }
        }
    }
}
