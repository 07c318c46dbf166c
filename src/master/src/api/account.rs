//! The account's own endpoints: `subscription_info` and `/auth/refresh`.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::extract::{Caller, JsonBody};
use super::reject::ApiError;
use crate::accounts::TokenSet;

/// Home Assistant starts Remote UI only when `billing_plan_type` is present and not
/// `no_subscription`; `provider` is left out (a truthy one forces a Cognito renewal).
pub(crate) async fn subscription_info(Caller(account): Caller) -> Json<Value> {
    Json(json!({
        "billing_plan_type": "sluice",
        "human_description": "Sluice remote access",
        "subscription_expires": account.subscription_expires,
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct RefreshRequest {
    refresh_token: String,
}

/// Exchanges a refresh token (once) for a new token set.
pub(crate) async fn refresh(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<RefreshRequest>,
) -> Result<Json<TokenSet>, ApiError> {
    let body = body.ok_or_else(|| ApiError::bad_request("a refresh_token is required"))?;
    Ok(Json(state.accounts.refresh(&body.refresh_token).await?))
}
