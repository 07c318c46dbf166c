//! `/.well-known/service-discovery`: the URL of every action Home Assistant's client knows,
//! each at this master. The client drops the whole document if one name it knows is missing
//! (and falls back to hard-coded Nabu Casa paths), so the map is the superset of every
//! release's names; the paths are the client's own fallbacks, so either way it lands here.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use serde_json::{Map, Value, json};

use super::AppState;
use super::extract::request_host;
use super::reject::ApiError;

/// How long the client may cache the document, seconds.
pub const VALID_FOR: u64 = 3600;

/// Every action name (hass-nabucasa 2.9.1's 24) with its path; `wss` marks websockets.
pub const ACTIONS: [(&str, &str, bool); 24] = [
    ("account_services", "/account/services", false),
    ("acme_directory", "/acme/directory", false),
    ("alexa_access_token", "/alexa/access_token", false),
    (
        "google_report_state_request_sync",
        "/google_actions/request_sync",
        false,
    ),
    (
        "google_report_state_websocket",
        "/google_actions/report_state",
        true,
    ),
    ("instance_connection", "/instance/connection", false),
    ("llm_connection_details", "/llm/connection_details", false),
    ("relayer_connect", "/websocket", true),
    (
        "remote_access_dns_challenge_remove",
        "/instance/dns_challenge_cleanup",
        false,
    ),
    (
        "remote_access_dns_challenge_set",
        "/instance/dns_challenge_txt",
        false,
    ),
    (
        "remote_access_ping_targets",
        "/instance/remote_ping_targets",
        false,
    ),
    ("remote_access_register", "/instance/register", false),
    (
        "remote_access_resolve_dns_cname",
        "/account/instance/resolve_dns_cname",
        false,
    ),
    (
        "remote_access_snitun_token",
        "/instance/snitun_token",
        false,
    ),
    ("storage_files_delete", "/files/delete", false),
    (
        "storage_files_download",
        "/files/download/{storage_type}/{filename}",
        false,
    ),
    ("storage_files_list", "/files/list/{storage_type}", false),
    ("storage_files_upload", "/files/upload", false),
    ("stt_proxy_websocket", "/stt/websocket", true),
    (
        "subscription_info",
        "/account/payments/subscription_info",
        false,
    ),
    (
        "subscription_migrate_paypal",
        "/account/payments/migrate_paypal_agreement",
        false,
    ),
    (
        "voice_connection_details",
        "/voice/connection_details",
        false,
    ),
    ("webhook_generate", "/instance/webhook", false),
    ("webrtc_ice_servers", "/webrtc/ice_servers", false),
];

/// The document for a client that reached the master at `host`.
pub fn document(host: &str) -> Value {
    let actions: Map<String, Value> = ACTIONS
        .iter()
        .map(|(name, path, ws)| {
            let scheme = if *ws { "wss" } else { "https" };
            (
                (*name).to_owned(),
                Value::String(format!("{scheme}://{host}{path}")),
            )
        })
        .collect();
    json!({
        "actions": actions,
        "valid_for": VALID_FOR,
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// Needs no token: the client fetches it with `skip_token_check`, so its bearer may have
/// expired, and nothing in it is secret.
pub(crate) async fn service_discovery(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let host = match &state.public_host {
        Some(h) => h.clone(),
        None => request_host(&uri, &headers)?,
    };
    Ok(Json(document(&host)))
}
