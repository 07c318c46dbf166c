//! The real SniTun client (`peers/client.py`): `ClientPeer` plus an endpoint connector.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use sluice_proto::crypto::{CipherKind, IV_LEN, KEY_LEN};
use sluice_proto::version::ProtocolVersion;

use crate::error::{Error, Result};
use crate::peers::{Peer, Release};
use crate::process::LoggedChild;
use crate::rundir::RunDir;

/// Seconds between a lost or failed connection and the next attempt (`client.py` default).
pub const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// What the client needs to open a tunnel: see [`crate::Credentials::client_config`].
#[derive(Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The Fernet token, sent verbatim.
    pub token: String,
    /// The tunnel's AES-256 key.
    pub aes_key: [u8; KEY_LEN],
    /// The tunnel's CBC IV.
    pub aes_iv: [u8; IV_LEN],
    /// The multiplexer protocol version (0.40.0 speaks only v0).
    pub protocol_version: ProtocolVersion,
    /// The tunnel cipher (0.40.0 speaks only aes-cbc).
    pub cipher: CipherKind,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConfig")
            .field("protocol_version", &self.protocol_version)
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

/// A running real SniTun client. Stops (SIGTERM, then SIGKILL to its process group) on drop.
///
/// Its stdout carries one line per event: `CONNECTED server=HOST:PORT` after each answered
/// challenge, `DISCONNECTED` when a tunnel ends, `CONNECT_FAILED <why>` for a failed attempt.
/// It reconnects after [`RECONNECT_DELAY`]. Logs (DEBUG) go to the same file.
#[derive(Debug)]
pub struct RealClient {
    release: Release,
    server: SocketAddr,
    // Field order: the process stops before its folder goes.
    child: LoggedChild,
    dir: RunDir,
}

impl RealClient {
    /// Starts `client.py` with `peer`'s snitun: it connects to `server` (a SniTun tunnel port)
    /// with `config` and forwards every channel to the TCP `endpoint`.
    ///
    /// Returns at once; use [`Self::wait_connected`]. Fails at once when the release cannot
    /// speak the config's protocol version or cipher.
    pub fn start(
        peer: &Peer,
        config: &ClientConfig,
        server: SocketAddr,
        endpoint: SocketAddr,
    ) -> Result<RealClient> {
        if !peer.supports(config.protocol_version, config.cipher) {
            return Err(Error::Other(format!(
                "snitun {} cannot speak protocol {} with {}",
                peer.release(),
                config.protocol_version,
                config.cipher.name()
            )));
        }
        let dir = RunDir::new(&format!("sluice-snitun-client-{}-", peer.release()))?;
        let path = dir.path().join("client.json");
        let json = serde_json::json!({
            "token": config.token,
            "aes_key": hex::encode(config.aes_key),
            "aes_iv": hex::encode(config.aes_iv),
            "protocol_version": config.protocol_version.number(),
            "cipher": config.cipher.name(),
        });
        crate::rundir::write_file(&path, &json.to_string())?;
        let mut cmd = peer.script_command("client.py");
        cmd.arg("--config")
            .arg(&path)
            .arg("--server")
            .arg(server.to_string())
            .arg("--end")
            .arg(endpoint.to_string())
            .arg("--reconnect-delay")
            .arg(RECONNECT_DELAY.as_secs_f64().to_string())
            .arg("--debug");
        let child = LoggedChild::spawn(
            cmd,
            &dir.path().join("client.log"),
            format!("snitun {} client", peer.release()),
        )?;
        Ok(RealClient {
            release: peer.release(),
            server,
            child,
            dir,
        })
    }

    /// Waits for the first `CONNECTED` (the challenge was answered). Fails early when the
    /// client exits; the error carries the tail of its log.
    pub fn wait_connected(&self, timeout: Duration) -> Result<()> {
        self.wait_connections(1, timeout)
    }

    /// Waits until `count` tunnels have been opened in all (e.g. 2 after a reconnect).
    pub fn wait_connections(&self, count: usize, timeout: Duration) -> Result<()> {
        self.child
            .wait_log(&format!("{count} CONNECTED line(s)"), timeout, |log| {
                (count_lines(log, "CONNECTED ") >= count).then_some(())
            })
    }

    /// Waits until `count` tunnels have ended in all.
    pub fn wait_disconnections(&self, count: usize, timeout: Duration) -> Result<()> {
        self.child
            .wait_log(&format!("{count} DISCONNECTED line(s)"), timeout, |log| {
                (count_lines(log, "DISCONNECTED") >= count).then_some(())
            })
    }

    /// How many tunnels it has opened so far.
    pub fn connections(&self) -> usize {
        count_lines(&self.child.log(), "CONNECTED ")
    }

    /// How many tunnels have ended so far.
    pub fn disconnections(&self) -> usize {
        count_lines(&self.child.log(), "DISCONNECTED")
    }

    /// How many attempts failed before a tunnel ran.
    pub fn failed_attempts(&self) -> usize {
        count_lines(&self.child.log(), "CONNECT_FAILED")
    }

    /// Whether a tunnel is up as far as the client knows (more opened than ended).
    pub fn is_connected(&self) -> bool {
        let log = self.child.log();
        count_lines(&log, "CONNECTED ") > count_lines(&log, "DISCONNECTED")
    }

    /// The server address it connects to.
    pub fn server(&self) -> SocketAddr {
        self.server
    }

    /// The snitun release it runs.
    pub fn release(&self) -> Release {
        self.release
    }

    /// The client process id (the leader of its process group).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// The log file (stdout and stderr).
    pub fn log_path(&self) -> &Path {
        self.child.log_path()
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        self.child.log()
    }

    /// Whether the log contains `needle`.
    pub fn log_contains(&self, needle: &str) -> bool {
        self.child.log().contains(needle)
    }

    /// How often the log contains `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.child.log().matches(needle).count()
    }

    /// Stops the client now (as drop does) and says how it ended.
    pub fn stop(mut self) -> Option<std::process::ExitStatus> {
        self.child.stop(crate::process::STOP_GRACE)
    }

    /// The run folder (config and log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Lines that start with `prefix` (the script's own lines; log lines start with a date).
fn count_lines(log: &str, prefix: &str) -> usize {
    log.lines().filter(|l| l.starts_with(prefix)).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_line_starts() {
        let log = "CONNECTED server=127.0.0.1:1\n2024 x WARNING DISCONNECTED\nDISCONNECTED\nCONNECTED server=127.0.0.1:1\nCONNECT_FAILED OSError: x\n";
        assert_eq!(count_lines(log, "CONNECTED "), 2);
        assert_eq!(count_lines(log, "DISCONNECTED"), 1);
        assert_eq!(count_lines(log, "CONNECT_FAILED"), 1);
    }
}
