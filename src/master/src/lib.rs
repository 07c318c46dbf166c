//! The Sluice session master: the control plane that knows accounts and their instances,
//! gives each instance its address in the service's zone and mints its tunnel tokens, behind
//! the HTTP API that Home Assistant's cloud client (`hass-nabucasa`) calls.
//!
//! [`Master::start`] runs it on the caller's tokio runtime over HTTPS (rustls) and returns a
//! [`MasterHandle`] with the bound address and a shutdown. The operator's side (add, list and
//! disable accounts; print a token set for enrolling a device) is [`Accounts`], which the
//! `sluice master` CLI opens on the same state directory.
//!
//! What it serves today:
//! - `/.well-known/service-discovery` with every action name the HA client knows, each URL at
//!   this master;
//! - `subscription_info`, `instance/connection`, `instance/remote_ping_targets` (the
//!   configured `ping_edges`), `instance/register` (the edge the client's pings reached
//!   fastest, else the configured one) and `instance/snitun_token`, with the
//!   protocol-version and cipher rule of [`protocol`];
//! - `POST /auth/login` (email and password for a token set; failed attempts limited per
//!   account and per address) and `POST /auth/refresh`: refresh-token rotation (a replayed
//!   refresh token is refused and revokes its family);
//! - the version block list ([`versions`]): 409 on `snitun_token` for a blocked Home
//!   Assistant, `POST /instance/version_override` for its owner, a new block clearing every
//!   override, all of it audited; a new block (from the CLI too: the list is polled) asks
//!   every instance on the relayer to `evaluate_remote_security`;
//! - the relayer websocket (`/websocket`, [`relayer`]): one connection per account, a first
//!   `system` message, and [`relayer::Relayer::ask`] to put a question (`remote_sni`,
//!   `connection_info`, `cloud` actions) to an instance and wait for its answer;
//!   `instance/connection` answers from it: connected (when, from where, which Home
//!   Assistant version) while the account holds a relayer connection.
//!
//! What it does **not** do yet (issue 11's later steps): anything that *uses* the relayer
//! beyond `evaluate_remote_security` after a new block (the account page's Connect and
//! Disconnect, the edge asking to wake an instance), the account page and its sign-in form
//! (CSRF, cookies), DNS and ACME (`dns_challenge_*`, `resolve_dns_cname`, the ACME directory:
//! their URLs are in the discovery map and answer 404), custom-domain aliases, edge load in
//! the edge choice, PostgreSQL, the edges learning keys
//! from the master and reporting their tunnels, and Sluice's connector enrolling with
//! `--master`. Every other action in the discovery map (voice, Alexa, Google, storage,
//! webhooks) answers 404 with a JSON reason.
//!
//! It depends on `sluice-proto` (the one token [`Issuer`](sluice_proto::token::Issuer)) and no
//! other Sluice crate: never the edge or the connector.

pub mod accounts;
mod api;
pub mod config;
mod error;
pub mod protocol;
pub mod relayer;
mod server;
pub mod store;
pub mod versions;

/// The named caps on what a client may send.
pub mod api_limits {
    pub use crate::accounts::jwt::MAX_JWT_LEN;
    pub use crate::accounts::{MAX_EMAIL_LEN, MAX_PASSWORD_LEN};
    pub use crate::api::{
        FAILURE_WINDOW, MAX_BODY_LEN, MAX_FAILURES_PER_ACCOUNT, MAX_FAILURES_PER_ADDRESS,
        MAX_HOST_LEN, MAX_PING_RESULTS,
    };
}

pub use accounts::{Accounts, TokenSet};
pub use config::{EdgeAddress, MasterConfig, RawMasterConfig};
pub use error::MasterError;
pub use server::{Master, MasterHandle, SHUTDOWN_GRACE};
pub use versions::Versions;
