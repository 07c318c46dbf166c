//! `relayer_connect`: the websocket upgrade, for the bearer's account.

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::response::Response;

use super::AppState;
use super::extract::Caller;
use super::reject::ApiError;
use crate::relayer::MAX_MESSAGE_LEN;

/// The bearer is checked before the upgrade: Home Assistant stops retrying on a 401 here,
/// which is right for a token that will not get better.
pub(crate) async fn connect(
    State(state): State<AppState>,
    Caller(account): Caller,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade =
        upgrade.map_err(|e| ApiError::bad_request(format!("not a websocket upgrade: {e}")))?;
    let relayer = state.relayer.clone();
    Ok(upgrade
        .max_message_size(MAX_MESSAGE_LEN)
        .on_upgrade(move |socket| async move { relayer.serve(account.id, socket).await }))
}
