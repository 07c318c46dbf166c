//! # sluice-loadgen: load for Sluice and any SniTun-compatible edge
//!
//! A black-box load generator. It plays every role a benchmark needs, thread-per-core
//! ([`runtime`]):
//! - **browsers** ([`browser`]): a real rustls ClientHello for each of many host names, then
//!   raw bytes, or a full rustls session;
//! - **home servers** ([`tunnel`], [`home`]): many tunnels, each a real SniTun-protocol peer
//!   built on `sluice-proto`, with a built-in origin and no socket behind it;
//! - **origins** ([`origin`]): a TCP (or TLS) server for the paths where something else (nginx,
//!   SniTun's client, our connector) carries the bytes home.
//!
//! Browsers and origins speak a tiny request/answer protocol ([`wire`]) so that one origin
//! serves every scenario ([`scenario`]): bulk, connect rate, handshakes, latency, scale and
//! handover. Every latency goes into an HdrHistogram; reports print as a table or JSON
//! ([`stats`]); [`report`] turns a side-by-side run into `BENCHMARKS.md`.
//!
//! What it does not do: verify certificates (it measures paths, not PKI), or leave 127.0.0.0/8.

pub mod admin;
pub mod browser;
pub mod creds;
pub mod home;
pub mod origin;
pub mod procstat;
pub mod report;
pub mod runtime;
pub mod scenario;
pub mod stats;
pub mod tls;
pub mod tunnel;
pub mod wire;
