//! The master's HTTP API over HTTPS on loopback, with a real client, and the tokens it mints
//! against a real in-process edge.

mod bad_input;
mod e2e;
mod relayer;
mod support;
mod versions;
