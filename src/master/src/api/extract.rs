//! Extractors that refuse in JSON: a capped JSON body, the caller's bearer token, the host
//! the request was sent to.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::AppState;
use super::reject::ApiError;
use crate::accounts::TokenUse;
use crate::store::Account;

/// The largest request body read; the API's requests are a few hundred bytes.
pub const MAX_BODY_LEN: usize = 16 * 1024;
/// The longest `Host` accepted (a host name and a port).
pub const MAX_HOST_LEN: usize = 253 + 6;

/// A JSON body, or `None` when the body is empty (Home Assistant posts `register` with
/// none). A body must say `application/json`.
#[derive(Debug)]
pub(crate) struct JsonBody<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {MAX_BODY_LEN} bytes"),
            )
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_LEN as u64) {
            return Err(too_large());
        }
        let json_type = is_json(req.headers());
        let bytes = axum::body::to_bytes(req.into_body(), MAX_BODY_LEN)
            .await
            .map_err(|_| too_large())?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        if !json_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "the body must be application/json",
            ));
        }
        serde_json::from_slice(&bytes)
            .map(|v| Self(Some(v)))
            .map_err(|e| ApiError::bad_request(format!("the body is not the JSON expected: {e}")))
    }
}

/// One `Content-Type`, and it is JSON (two are ambiguous, and refused).
fn is_json(headers: &HeaderMap) -> bool {
    let mut types = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(only), None) = (types.next(), types.next()) else {
        return false;
    };
    only.to_str()
        .ok()
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"))
}

/// The token in `Authorization`: `Bearer <token>`, or (`raw_ok`) the bare token, which is how
/// Home Assistant sends its access token to `instance/connection`.
fn token(parts: &Parts, raw_ok: bool) -> Result<&str, ApiError> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("no Authorization header"))?
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is not text"))?
        .trim();
    match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => Ok(rest.trim()),
        None if raw_ok => Ok(value),
        _ => Err(ApiError::unauthorized(
            "the Authorization header is not a bearer token",
        )),
    }
}

/// The account whose id token is the request's bearer.
#[derive(Debug)]
pub(crate) struct Caller(pub Account);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = token(parts, false)?;
        Ok(Self(
            state.accounts.authenticate(token, TokenUse::Id).await?,
        ))
    }
}

/// The account whose access token is in `Authorization`, bare or as a bearer.
#[derive(Debug)]
pub(crate) struct AccessCaller(pub Account);

impl FromRequestParts<AppState> for AccessCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = token(parts, true)?;
        Ok(Self(
            state.accounts.authenticate(token, TokenUse::Access).await?,
        ))
    }
}

/// The host (and port) the request was sent to: HTTP/2's `:authority`, else `Host`.
pub(crate) fn request_host(
    parts_uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Result<String, ApiError> {
    let host = parts_uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .ok_or_else(|| ApiError::bad_request("the request names no host"))?;
    let fine = !host.is_empty()
        && host.len() <= MAX_HOST_LEN
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b));
    if !fine {
        return Err(ApiError::bad_request(
            "the request's host is not a host name",
        ));
    }
    Ok(host.to_ascii_lowercase())
}

/// The `User-Agent`, if it is text.
pub(crate) fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::USER_AGENT)?.to_str().ok()
}
