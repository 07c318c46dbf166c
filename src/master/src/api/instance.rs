//! The instance endpoints: `register` (a stable random name in the zone), `snitun_token`
//! (a Fernet token for the edges), `connection` and `remote_ping_targets`.

use std::net::IpAddr;
use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_proto::Hostname;
use sluice_proto::crypto::{CipherKind, IV_LEN, KEY_LEN};
use sluice_proto::token::TokenRequest;

use super::AppState;
use super::extract::{AccessCaller, Caller, JsonBody, user_agent};
use super::reject::ApiError;
use crate::accounts::random_id;
use crate::config::{EdgeAddress, PingTarget};
use crate::protocol::{self, Asked, Client};
use crate::store::{Account, Actor, Instance, StoreError};
use crate::versions::Verdict;

/// The most ping results read from a `register` request.
pub const MAX_PING_RESULTS: usize = 64;
/// How many random names `register` draws before it gives up (each a 1 in 2^80 collision).
const MAX_NAME_DRAWS: usize = 8;
/// Instance labels: this many characters of lower-case base32.
const NAME_LEN: usize = 16;
const NAME_ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// One ping result: what the client measured to a ping target.
#[derive(Debug, Deserialize)]
pub(crate) struct PingResult {
    ip: String,
    #[serde(default)]
    avg: Option<f64>,
    #[serde(default)]
    reachable: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RegisterRequest {
    #[serde(default)]
    ping_result: Vec<PingResult>,
}

#[derive(Debug, Serialize)]
pub(crate) struct RegisterReply {
    /// The instance's name in the zone: the ACME name and the SNI the edge routes.
    domain: String,
    /// The ACME account contact.
    email: String,
    /// The edge to dial (Home Assistant dials port 443 whatever this says).
    server: String,
    /// The edge's tunnel port, for clients that can dial another (Sluice's connector).
    server_port: u16,
    /// Verified custom domains (none yet).
    alias: Vec<String>,
}

fn random_label() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..NAME_LEN)
        .map(|_| char::from(NAME_ALPHABET[rng.gen_range(0..NAME_ALPHABET.len())]))
        .collect()
}

fn domain(state: &AppState, instance: &Instance) -> Result<Hostname, ApiError> {
    let name = format!("{}.{}", instance.name, state.zone);
    // A zone near the length limit leaves no room for the label: the operator's doing.
    Hostname::parse(name.as_bytes()).map_err(|e| {
        tracing::error!(%name, error = %e, "instance domain is not a host name");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the zone is misconfigured")
    })
}

async fn register_instance(state: &AppState, account: &Account) -> Result<Instance, ApiError> {
    if let Some(found) = state.accounts.store().instance_of(&account.id).await? {
        return Ok(found);
    }
    let at = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    for _ in 0..MAX_NAME_DRAWS {
        let by = Actor {
            who: &account.id,
            at,
        };
        match state
            .accounts
            .store()
            .register_instance(&account.id, &random_id(), &random_label(), by)
            .await
        {
            Err(StoreError::NameTaken(_)) => continue,
            other => return Ok(other?),
        }
    }
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "no free instance name was found; try again",
    ))
}

/// The edge of the target with the lowest average round trip among `results` (reachable
/// ones, finite and not negative), or `default` when none of them names a target.
pub(crate) fn choose_edge<'a>(
    default: &'a EdgeAddress,
    targets: &'a [PingTarget],
    results: &[(IpAddr, f64)],
) -> &'a EdgeAddress {
    results
        .iter()
        .filter(|(_, avg)| avg.is_finite() && *avg >= 0.0)
        .filter_map(|(ip, avg)| Some((targets.iter().find(|t| t.ip == *ip)?, *avg)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(default, |(t, _)| &t.edge)
}

/// Gives the caller's instance its name (the same one every time) and its edge.
pub(crate) async fn register(
    State(state): State<AppState>,
    Caller(account): Caller,
    JsonBody(body): JsonBody<RegisterRequest>,
) -> Result<Json<RegisterReply>, ApiError> {
    let body = body.unwrap_or_default();
    if body.ping_result.len() > MAX_PING_RESULTS {
        return Err(ApiError::bad_request(format!(
            "more than {MAX_PING_RESULTS} ping results"
        )));
    }
    let instance = register_instance(&state, &account).await?;
    let results: Vec<(IpAddr, f64)> = body
        .ping_result
        .iter()
        .filter(|r| r.reachable == Some(true))
        .filter_map(|r| Some((r.ip.parse().ok()?, r.avg?)))
        .collect();
    let edge = choose_edge(&state.edge, &state.ping_edges, &results);
    Ok(Json(RegisterReply {
        domain: domain(&state, &instance)?.as_str().to_owned(),
        email: account.email,
        server: edge.host.clone(),
        server_port: edge.port,
        alias: Vec::new(),
    }))
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SnitunTokenRequest {
    /// Hex, 32 bytes: Home Assistant's own key (Sluice's connector may leave both out and
    /// get fresh ones).
    aes_key: Option<String>,
    /// Hex, 16 bytes.
    aes_iv: Option<String>,
    /// The highest protocol version the client speaks (not Home Assistant: see
    /// [`crate::protocol`]).
    protocol_version: Option<u64>,
    /// The cipher it wants (not Home Assistant).
    cipher: Option<String>,
}

/// The reply: what Home Assistant reads (`token`, `valid`, `throttling`,
/// `protocol_version`) and the rest of a credentials document
/// (`sluice_proto::token::Credentials` parses it), which the client would otherwise have to
/// remember beside the token.
#[derive(Debug, Serialize)]
pub(crate) struct SnitunTokenReply {
    token: String,
    valid: u64,
    throttling: u32,
    protocol_version: u8,
    hostname: String,
    alias: Vec<String>,
    cipher: &'static str,
    aes_key: String,
    aes_iv: String,
}

fn hex_key<const N: usize>(field: &str, value: &str) -> Result<[u8; N], ApiError> {
    let bad = || ApiError::bad_request(format!("{field} must be {} hex digits", 2 * N));
    let bytes = hex::decode(value).map_err(|_| bad())?;
    bytes.try_into().map_err(|_| bad())
}

/// Mints a tunnel token for the caller's instance with the master's first Fernet key.
pub(crate) async fn snitun_token(
    State(state): State<AppState>,
    Caller(account): Caller,
    headers: HeaderMap,
    JsonBody(body): JsonBody<SnitunTokenRequest>,
) -> Result<Json<SnitunTokenReply>, ApiError> {
    let body = body.unwrap_or_default();
    let client = Client::from_user_agent(user_agent(&headers));
    let keys = match (&body.aes_key, &body.aes_iv) {
        (Some(k), Some(iv)) => Some((
            hex_key::<KEY_LEN>("aes_key", k)?,
            hex_key::<IV_LEN>("aes_iv", iv)?,
        )),
        (None, None) if client == Client::Other => None,
        _ => return Err(ApiError::bad_request("aes_key and aes_iv are required")),
    };
    let cipher = body
        .cipher
        .as_deref()
        .map(|c| {
            CipherKind::from_name(c).ok_or_else(|| {
                ApiError::bad_request(format!("cipher {c:?} is not aes-cbc or aes-gcm-siv"))
            })
        })
        .transpose()?;
    let asked = Asked {
        protocol_version: body.protocol_version,
        cipher,
    };
    let terms = protocol::decide(client, asked, state.edge_protocol, state.ha)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let instance = registered(&state, &account).await?;
    // 409 is what Home Assistant reads as "insecure version": it tells the owner and does not
    // retry. Only this endpoint refuses a blocked version; everything else keeps working.
    if let Verdict::Blocked(reason) = state.versions.check(client, &instance).await? {
        return Err(ApiError::new(StatusCode::CONFLICT, reason));
    }
    let request = TokenRequest {
        protocol_version: terms.version,
        cipher: terms.cipher,
        valid_for: state.tunnel_token_validity,
        ..TokenRequest::new(domain(&state, &instance)?)
    };
    let now = SystemTime::now();
    let rng = &mut rand::rngs::OsRng;
    let issuer = state.issuer.read().expect("issuer lock").clone();
    let issued = match keys {
        Some((key, iv)) => issuer.issue_with_keys(&request, key, iv, now, rng),
        None => issuer.issue(&request, now, rng),
    }
    .map_err(|e| {
        tracing::error!(error = %e, "minting failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the token could not be minted",
        )
    })?;
    let c = &issued.claims;
    Ok(Json(SnitunTokenReply {
        valid: c.valid as u64,
        throttling: state.throttling,
        protocol_version: c.protocol_version.number(),
        hostname: c.hostname.as_str().to_owned(),
        alias: c.aliases.iter().map(|a| a.as_str().to_owned()).collect(),
        cipher: c.cipher.name(),
        aes_key: hex::encode(c.aes_key),
        aes_iv: hex::encode(c.aes_iv),
        token: issued.token,
    }))
}

async fn registered(state: &AppState, account: &Account) -> Result<Instance, ApiError> {
    state
        .accounts
        .store()
        .instance_of(&account.id)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "this account has no instance yet: call instance/register first",
            )
        })
}

#[derive(Debug, Deserialize)]
pub(crate) struct OverrideRequest {
    accept_risk: bool,
}

/// The owner lets their instance connect although its version is blocked, until the
/// operator blocks another version. The account page will call this; it must say
/// `accept_risk: true`, so that nothing overrides by accident.
pub(crate) async fn version_override(
    State(state): State<AppState>,
    Caller(account): Caller,
    JsonBody(body): JsonBody<OverrideRequest>,
) -> Result<Json<Value>, ApiError> {
    if !body.is_some_and(|b| b.accept_risk) {
        return Err(ApiError::bad_request(
            "an override needs {\"accept_risk\": true}",
        ));
    }
    let instance = registered(&state, &account).await?;
    state.versions.override_for(&instance, &account.id).await?;
    Ok(Json(json!({ "override": true })))
}

/// Home Assistant's "is another instance already connected?" check at sign-in: whether the
/// account holds a relayer connection, and who.
pub(crate) async fn connection(
    State(state): State<AppState>,
    AccessCaller(account): AccessCaller,
) -> Result<Json<Value>, ApiError> {
    let Some(peer) = state.relayer.peer(&account.id) else {
        return Ok(Json(json!({ "connected": false })));
    };
    let name = match state.accounts.store().instance_of(&account.id).await? {
        Some(instance) => domain(&state, &instance)?.as_str().to_owned(),
        None => String::new(),
    };
    let version = peer
        .user_agent
        .as_deref()
        .and_then(|a| {
            a.split_whitespace()
                .find_map(|p| p.strip_prefix("HomeAssistant/"))
        })
        .unwrap_or_default()
        .to_owned();
    Ok(Json(json!({
        "connected": true,
        "details": {
            "connected_at": rfc3339(peer.connected_at),
            "name": name,
            "remote_ip_address": peer.remote_ip.map(|ip| ip.to_string()),
            "version": version,
        }
    })))
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (the civil-from-days algorithm; no calendar crate
/// for one timestamp).
fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The edges to ping (`ping_edges`); an empty list makes the client skip its ICMP pings.
pub(crate) async fn remote_ping_targets(
    State(state): State<AppState>,
    Caller(_account): Caller,
) -> Json<Value> {
    let targets: Vec<Value> = state
        .ping_edges
        .iter()
        .map(|t| json!({"ip": t.ip.to_string(), "location": t.location}))
        .collect();
    Json(json!({ "targets": targets, "timeout": 1000, "count": 3 }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn edge(host: &str) -> EdgeAddress {
        EdgeAddress {
            host: host.into(),
            port: 443,
        }
    }

    fn targets() -> Vec<PingTarget> {
        ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
            .iter()
            .enumerate()
            .map(|(i, ip)| PingTarget {
                ip: ip.parse().unwrap(),
                location: format!("site {i}"),
                edge: edge(&format!("e{i}.example.test")),
            })
            .collect()
    }

    #[test]
    fn the_fastest_known_target_wins() {
        let d = edge("anycast.example.test");
        let t = targets();
        let r = |ip: &str, avg: f64| (ip.parse().unwrap(), avg);
        assert_eq!(choose_edge(&d, &t, &[]), &d);
        assert_eq!(
            choose_edge(&d, &t, &[r("10.0.0.2", 9.0), r("10.0.0.3", 4.0)]).host,
            "e2.example.test"
        );
        assert_eq!(
            choose_edge(&d, &t, &[r("192.0.2.1", 0.1)]),
            &d,
            "not a target"
        );
        assert_eq!(
            choose_edge(&d, &t, &[r("10.0.0.1", f64::NAN), r("10.0.0.2", -1.0)]),
            &d
        );
    }

    proptest! {
        #[test]
        fn the_choice_is_the_default_or_the_minimum(results in proptest::collection::vec((0u8..5, -5.0f64..100.0), 0..8)) {
            let d = edge("anycast.example.test");
            let t = targets();
            let results: Vec<(IpAddr, f64)> = results
                .into_iter()
                .map(|(n, avg)| (format!("10.0.0.{n}").parse().unwrap(), avg))
                .collect();
            let chosen = choose_edge(&d, &t, &results);
            let valid: Vec<_> = results
                .iter()
                .filter(|(ip, avg)| *avg >= 0.0 && t.iter().any(|x| x.ip == *ip))
                .collect();
            match valid.iter().min_by(|a, b| a.1.total_cmp(&b.1)) {
                None => prop_assert_eq!(chosen, &d),
                Some((_, best)) => {
                    let got = t.iter().find(|x| &x.edge == chosen).unwrap();
                    let got_avg = valid.iter().filter(|(ip, _)| *ip == got.ip).map(|(_, a)| *a).fold(f64::INFINITY, f64::min);
                    prop_assert_eq!(got_avg, *best);
                }
            }
        }
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::rfc3339(1_796_690_588), "2026-12-08T00:43:08Z");
        assert_eq!(super::rfc3339(4_102_444_799), "2099-12-31T23:59:59Z");
    }
}
