//! `relayer_connect`: the websocket upgrade, for the bearer's account.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{Extensions, HeaderMap};
use axum::response::Response;

use super::AppState;
use super::extract::{Caller, user_agent};
use super::reject::ApiError;
use crate::relayer::{MAX_MESSAGE_LEN, Peer};

/// The bearer is checked before the upgrade: Home Assistant stops retrying on a 401 here,
/// which is right for a token that will not get better.
pub(crate) async fn connect(
    State(state): State<AppState>,
    Caller(account): Caller,
    headers: HeaderMap,
    extensions: Extensions,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade =
        upgrade.map_err(|e| ApiError::bad_request(format!("not a websocket upgrade: {e}")))?;
    let peer = Peer {
        connected_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        // Absent where the router runs without the listener (tests).
        remote_ip: extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip()),
        user_agent: user_agent(&headers).map(str::to_owned),
    };
    let relayer = state.relayer.clone();
    Ok(upgrade
        .max_message_size(MAX_MESSAGE_LEN)
        .on_upgrade(move |socket| async move { relayer.serve(account.id, peer, socket).await }))
}
