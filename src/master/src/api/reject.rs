//! Every refusal is a 4xx (or a 503 when the store fails) with a JSON `{"reason": ...}`, the
//! key Home Assistant's client reports. Never `message`: a 400 whose `message` starts with
//! `NC-CE-02`/`NC-CE-03` raises an error the client's Remote UI loop does not survive.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::accounts::{AccountError, JwtError};
use crate::store::StoreError;
use crate::versions::VersionError;

/// An API refusal: a status and the reason given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub reason: String,
}

impl ApiError {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
        }
    }

    pub fn bad_request(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, reason)
    }

    pub fn unauthorized(reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, reason)
    }

    fn unavailable(what: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %what, "request failed in the store");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service is unavailable; try again",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "reason": self.reason }))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NoAccount(_) => Self::unauthorized("unknown account"),
            other => Self::unavailable(&other),
        }
    }
}

impl From<VersionError> for ApiError {
    fn from(e: VersionError) -> Self {
        match e {
            VersionError::Store(e) => e.into(),
            other => Self::bad_request(other.to_string()),
        }
    }
}

impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        match e {
            AccountError::Token(JwtError::Expired) => Self::unauthorized("the token has expired"),
            AccountError::Token(JwtError::Algorithm) => {
                Self::unauthorized("the token's algorithm is not accepted")
            }
            AccountError::Token(e @ JwtError::WrongUse(_)) => Self::unauthorized(e.to_string()),
            AccountError::Token(JwtError::Invalid) => Self::unauthorized("the token is not valid"),
            AccountError::Replayed => Self::unauthorized(e.to_string()),
            AccountError::WrongCredentials => Self::unauthorized(e.to_string()),
            AccountError::Disabled => Self::new(StatusCode::FORBIDDEN, "the account is disabled"),
            AccountError::BadEmail(_) | AccountError::BadPassword => {
                Self::bad_request(e.to_string())
            }
            AccountError::Store(e) => e.into(),
            other @ (AccountError::KeyFile(_) | AccountError::Hash(_)) => Self::unavailable(&other),
        }
    }
}
