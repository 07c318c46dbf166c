//! The real SniTun server (`peers/server.py`) on 127.0.0.1, port 0.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use sluice_proto::token::FernetKey;

use crate::error::Result;
use crate::peers::{Peer, Release};
use crate::process::LoggedChild;
use crate::rundir::RunDir;

/// How long the server may take to listen (worker mode starts processes).
pub const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Which SniTun server class runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// `SniTunServerSingle`: tunnels and TLS callers share one port.
    Single,
    /// `SniTunServerWorker`: an epoll acceptor plus this many worker processes, one port.
    Worker {
        /// Worker processes (2 is plenty on loopback).
        workers: usize,
    },
    /// `SniTunServer`: TLS callers on [`RealServer::port`], tunnels on
    /// [`RealServer::peer_port`].
    Dual,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Single => "single",
            Mode::Worker { .. } => "worker",
            Mode::Dual => "dual",
        }
    }
}

/// A running real SniTun server. Stops (SIGTERM, then SIGKILL to its process group) on drop.
///
/// It logs at DEBUG level to [`Self::log_path`], together with its stdout; on a panicking
/// drop (a failing test) its run folder is kept and its path printed.
#[derive(Debug)]
pub struct RealServer {
    /// The public port: TLS callers, and in single and worker mode also tunnels.
    pub port: u16,
    /// Dual mode only: the port tunnels connect to.
    pub peer_port: Option<u16>,
    mode: Mode,
    release: Release,
    // Field order: the process stops before its folder goes.
    child: LoggedChild,
    dir: RunDir,
}

impl RealServer {
    /// Starts `server.py` with `peer`'s snitun in `mode`, accepting tokens under any of `keys`
    /// (the first is the current one), and waits until it listens.
    pub fn start(peer: &Peer, mode: Mode, keys: &[FernetKey]) -> Result<RealServer> {
        let dir = RunDir::new(&format!("sluice-snitun-server-{}-", peer.release()))?;
        let keys: Vec<String> = keys.iter().map(FernetKey::to_base64).collect();
        let config = dir.path().join("keys.json");
        crate::rundir::write_file(
            &config,
            &serde_json::json!({ "fernet_keys": keys }).to_string(),
        )?;
        let mut cmd = peer.script_command("server.py");
        cmd.arg("--config")
            .arg(&config)
            .args(["--mode", mode.name(), "--debug"]);
        if let Mode::Worker { workers } = mode {
            cmd.args(["--workers", &workers.to_string()]);
        }
        let log = dir.path().join("server.log");
        let child = LoggedChild::spawn(
            cmd,
            &log,
            format!("snitun {} server ({} mode)", peer.release(), mode.name()),
        )?;
        let (port, peer_port) =
            child.wait_line("the LISTENING line", START_TIMEOUT, parse_listening)?;
        Ok(RealServer {
            port,
            peer_port,
            mode,
            release: peer.release(),
            child,
            dir,
        })
    }

    /// The address TLS callers connect to.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The address tunnel clients connect to: the peer port in dual mode, else [`Self::addr`].
    pub fn tunnel_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.peer_port.unwrap_or(self.port)))
    }

    /// The mode it runs in.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The snitun release it runs.
    pub fn release(&self) -> Release {
        self.release
    }

    /// The server process id (the leader of its process group).
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

    /// Waits until the log contains `needle` (fails early if the server exits).
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        self.child
            .wait_log(&format!("{needle:?} in the log"), timeout, |log| {
                log.contains(needle).then_some(())
            })
    }

    /// Waits until the server has registered a tunnel for `hostname`
    /// (its debug log says `New peer connection: <hostname>`), `count` times in all.
    ///
    /// A client prints `CONNECTED` once it has answered the challenge; the server registers
    /// the tunnel right after checking that answer, so curl can race it. Wait for this first.
    pub fn wait_peer_registered(
        &self,
        hostname: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<()> {
        let needle = format!("New peer connection: {hostname}\n");
        self.child.wait_log(
            &format!("{count} registration(s) of {hostname}"),
            timeout,
            |log| (log.matches(&needle).count() >= count).then_some(()),
        )
    }

    /// Stops the server now (as drop does) and says how it ended.
    pub fn stop(mut self) -> Option<std::process::ExitStatus> {
        self.child.stop(crate::process::STOP_GRACE)
    }

    /// The run folder (config and log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// `LISTENING port=P [peer_port=Q]`.
fn parse_listening(line: &str) -> Option<(u16, Option<u16>)> {
    let rest = line.strip_prefix("LISTENING ")?;
    let mut port = None;
    let mut peer_port = None;
    for field in rest.split_whitespace() {
        match field.split_once('=') {
            Some(("port", v)) => port = v.parse().ok(),
            Some(("peer_port", v)) => peer_port = v.parse().ok(),
            _ => {}
        }
    }
    Some((port?, peer_port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_lines() {
        assert_eq!(parse_listening("LISTENING port=443"), Some((443, None)));
        assert_eq!(
            parse_listening("LISTENING port=1 peer_port=2"),
            Some((1, Some(2)))
        );
        assert_eq!(parse_listening("2024 root INFO LISTENING port=1"), None);
        assert_eq!(parse_listening("LISTENING peer_port=2"), None);
    }
}
