//! The HTTP API, at the paths Home Assistant's client falls back to (so the discovery map
//! and the fallbacks agree). Every refusal is JSON (`reject.rs`); unknown paths and methods
//! too.

mod account;
mod discovery;
mod extract;
mod instance;
mod login;
mod reject;
mod relayer;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode, Uri};
use axum::routing::{get, post};
use sluice_proto::Hostname;
use sluice_proto::token::Issuer;
use sluice_proto::version::ProtocolVersion;

pub use extract::{MAX_BODY_LEN, MAX_HOST_LEN};
pub use instance::MAX_PING_RESULTS;
pub use login::{FAILURE_WINDOW, MAX_FAILURES_PER_ACCOUNT, MAX_FAILURES_PER_ADDRESS};

use crate::accounts::Accounts;
use crate::config::EdgeAddress;
use crate::protocol::HaThresholds;
use crate::relayer::Relayer;
use crate::versions::Versions;
use reject::ApiError;

/// What every handler reads.
#[derive(Debug)]
pub(crate) struct Shared {
    pub accounts: Accounts,
    pub versions: Versions,
    pub relayer: Relayer,
    pub logins: login::LoginLimiter,
    /// Replaced whole when the key file is reloaded; never held across an await.
    pub issuer: std::sync::RwLock<Issuer>,
    pub zone: Hostname,
    pub edge: EdgeAddress,
    pub ping_edges: Vec<crate::config::PingTarget>,
    pub public_host: Option<String>,
    pub tunnel_token_validity: Duration,
    pub throttling: u32,
    pub edge_protocol: ProtocolVersion,
    pub ha: HaThresholds,
}

pub(crate) type AppState = Arc<Shared>;

async fn not_found(uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        format!("{} is not offered by this service", uri.path()),
    )
}

async fn wrong_method(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} does not take {method}", uri.path()),
    )
}

/// The router over `state`.
pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route(
            "/.well-known/service-discovery",
            get(discovery::service_discovery),
        )
        .route(
            "/account/payments/subscription_info",
            get(account::subscription_info),
        )
        .route("/auth/login", post(login::login))
        .route("/auth/refresh", post(account::refresh))
        .route("/websocket", get(relayer::connect))
        .route("/instance/connection", get(instance::connection))
        .route(
            "/instance/remote_ping_targets",
            get(instance::remote_ping_targets),
        )
        .route("/instance/register", post(instance::register))
        .route("/instance/snitun_token", post(instance::snitun_token))
        .route(
            "/instance/version_override",
            post(instance::version_override),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(wrong_method)
        // The extractor reads at most MAX_BODY_LEN itself (and answers in JSON); this only
        // keeps axum's own limit from being the lower one.
        .layer(DefaultBodyLimit::max(MAX_BODY_LEN + 1))
        .with_state(state)
}

#[cfg(test)]
mod tests;
