//! Edge configuration: a TOML file and command-line flags, merged and validated before any
//! socket is bound.
//!
//! Precedence, highest first: a flag, the file, the default. The raw layer ([`RawConfig`])
//! has every field optional and rejects unknown keys; [`RawConfig::resolve`] applies the
//! defaults (one table, [`defaults`]), reads the Fernet key file and checks every value with
//! [`EdgeConfig::validate`], which [`crate::start`] runs again before binding anything (the
//! fields are public, so an embedder or a test could have changed them). A file's
//! `workers = 0` means one per CPU and is resolved here; an [`EdgeConfig`] with zero workers
//! is invalid. `max_tunnels`, `max_connections` and `max_pending_handshakes`
//! are limits of the whole edge: the workers count them together (one atomic counter each,
//! touched once per connection, never per byte), so an edge never admits more, whatever the
//! number of workers, and never refuses below them because one worker is busier.
//! `max_channels_per_tunnel` and the flow-control caps are per tunnel or per channel.

use crate::listener::{ListenerSpec, Role};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sluice_proto::limits::MAX_HELLO_LEN_LIMIT;
use sluice_proto::mux::MuxConfig;
use sluice_proto::token::FernetKey;

pub mod defaults;

/// Where a newcomer's edge listens when nothing is configured.
pub const DEFAULT_LISTEN: SocketAddr = defaults::LISTEN;

/// Which I/O driver the workers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum IoDriver {
    /// io_uring, falling back to epoll (with one log line saying why) where it is unavailable.
    #[default]
    Auto,
    /// io_uring only; the edge refuses to start without it.
    IoUring,
    /// epoll only.
    Epoll,
}

impl std::str::FromStr for IoDriver {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "io-uring" | "io_uring" | "uring" => Ok(Self::IoUring),
            "epoll" => Ok(Self::Epoll),
            _ => Err(format!(
                "unknown I/O driver {s:?} (auto, io-uring or epoll)"
            )),
        }
    }
}

/// The configuration as written: every field optional, unknown keys refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Addresses for browsers (and, without `tunnel_listen`, tunnels too: single-port mode).
    pub listen: Option<Vec<SocketAddr>>,
    /// Addresses for tunnels only (dual-port mode). `peer_listen`, its name before, is still
    /// read, so configs written for it keep working.
    #[serde(alias = "peer_listen")]
    pub tunnel_listen: Option<Vec<SocketAddr>>,
    /// File of Fernet keys, one per line; any may verify a token.
    pub fernet_keys: Option<PathBuf>,
    /// Worker threads; 0 or absent means one per CPU.
    pub workers: Option<usize>,
    /// Pin each worker to its own CPU.
    pub pin_workers: Option<bool>,
    /// Address of the admin endpoint (`/metrics`, `/healthz`); absent disables it.
    pub admin: Option<SocketAddr>,
    /// Expect a PROXY protocol (v1 or v2) header on every connection, from a trusted balancer.
    pub trust_proxy_protocol: Option<bool>,
    /// Listeners one by one (`[[listeners]]`: `addr`, `role` = both | browsers | tunnels,
    /// `trust_proxy_protocol`), instead of `listen`, `tunnel_listen` and `trust_proxy_protocol`.
    pub listeners: Option<Vec<ListenerSpec>>,
    /// I/O driver.
    pub io: Option<IoDriver>,
    /// Give memory freed after a burst back to the system (glibc only).
    pub trim_memory: Option<bool>,
    /// Limits.
    #[serde(default)]
    pub limits: RawLimits,
    /// Timeouts.
    #[serde(default)]
    pub timeouts: RawTimeouts,
}

/// `[limits]`: caps that protect the edge; at a cap the newcomer is refused.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Tunnels connected at once, in the whole edge.
    pub max_tunnels: Option<usize>,
    /// Channels (browser connections) per tunnel.
    pub max_channels_per_tunnel: Option<usize>,
    /// Browser connections at once, in the whole edge.
    pub max_connections: Option<usize>,
    /// Connections still in their hello or tunnel handshake, in the whole edge.
    pub max_pending_handshakes: Option<usize>,
    /// Largest ClientHello handshake message, in bytes.
    pub max_hello_len: Option<usize>,
    /// Largest multiplexer frame payload accepted from a tunnel.
    pub max_frame_size: Option<u32>,
    /// A channel's undelivered bytes at which a protocol-1+ tunnel is sent PAUSE.
    pub channel_pause_bytes: Option<usize>,
    /// ... and at which RESUME.
    pub channel_resume_bytes: Option<usize>,
    /// A channel's undelivered bytes above which the channel is closed (overrun).
    pub channel_queue_max: Option<usize>,
    /// A tunnel's undelivered bytes above which its channel holding the most is closed.
    pub tunnel_queue_max: Option<usize>,
    /// A channel's bytes queued towards its tunnel above which its browser is not read.
    pub channel_send_high: Option<usize>,
    /// ... and at or below which it is read again.
    pub channel_send_low: Option<usize>,
}

/// `[timeouts]`, as human durations (`"10s"`, `"2m"`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    /// Until a browser's ClientHello is complete.
    #[serde(default, with = "humantime_serde")]
    pub hello: Option<Duration>,
    /// Until a tunnel's token and challenge answer are in.
    #[serde(default, with = "humantime_serde")]
    pub handshake: Option<Duration>,
    /// A tunnel that sends nothing for this long is dropped (its client pings every 50 s).
    #[serde(default, with = "humantime_serde")]
    pub tunnel_idle: Option<Duration>,
    /// A channel with no data either way for this long is closed.
    #[serde(default, with = "humantime_serde")]
    pub channel_idle: Option<Duration>,
    /// A write to a socket that does not progress for this long fails.
    #[serde(default, with = "humantime_serde")]
    pub write: Option<Duration>,
    /// How long a graceful shutdown waits for browser connections to finish.
    #[serde(default, with = "humantime_serde")]
    pub shutdown_grace: Option<Duration>,
}

/// A configuration problem, found before anything is bound.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for this schema.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A line of the Fernet key file is not a key.
    #[error("{path}:{line}: not a Fernet key (32 bytes of urlsafe base64)")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
    },
    /// A value is out of range or inconsistent with another.
    #[error("invalid setting `{setting}`: {why}")]
    Invalid {
        /// The setting, as named in the file.
        setting: &'static str,
        /// What is wrong.
        why: String,
    },
}

fn invalid(setting: &'static str, why: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        why: why.into(),
    }
}

/// Limits as each edge enforces them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Tunnels connected at once.
    pub max_tunnels: usize,
    /// Browser connections at once.
    pub max_connections: usize,
    /// Connections in their hello or handshake.
    pub max_pending_handshakes: usize,
    /// Largest ClientHello handshake message.
    pub max_hello_len: usize,
}

/// Timeouts of the edge's own waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timeouts {
    /// Until a ClientHello is complete.
    pub hello: Duration,
    /// Until a tunnel handshake is complete.
    pub handshake: Duration,
    /// A write that does not progress.
    pub write: Duration,
    /// Graceful shutdown.
    pub shutdown_grace: Duration,
}

/// An edge configuration. [`RawConfig::resolve`] and [`EdgeConfig::for_keys`] build only
/// valid ones; the fields stay public for tests and embedders to adjust, so [`crate::start`]
/// checks it again ([`EdgeConfig::validate`]) and refuses an inconsistent one.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeConfig {
    /// Browser (and, in single-port mode, tunnel) addresses.
    pub listen: Vec<SocketAddr>,
    /// Tunnel-only addresses (dual-port mode); empty in single-port mode.
    pub tunnel_listen: Vec<SocketAddr>,
    /// Keys that may verify a token.
    pub fernet_keys: Vec<FernetKey>,
    /// Where the keys came from (reloaded on SIGHUP), if a file.
    pub fernet_keys_path: Option<PathBuf>,
    /// Worker threads, at least 1 (a file's `workers = 0`, one per CPU, is resolved before).
    pub workers: usize,
    /// Pin workers to CPUs.
    pub pin_workers: bool,
    /// Admin endpoint.
    pub admin: Option<SocketAddr>,
    /// Require a PROXY header on every connection.
    pub trust_proxy_protocol: bool,
    /// Listeners one by one; when not empty, `listen`, `tunnel_listen` and
    /// `trust_proxy_protocol` are not used.
    pub listeners: Vec<ListenerSpec>,
    /// I/O driver.
    pub io: IoDriver,
    /// Give memory freed after a burst back to the system (`memory.rs`).
    pub trim_memory: bool,
    /// Edge-wide limits.
    pub limits: Limits,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Each tunnel's multiplexer settings.
    pub mux: MuxConfig,
}

impl RawConfig {
    /// Reads a TOML config file.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_toml(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// Overlays `over` (flags) on `self` (the file): every field set in `over` wins.
    pub fn overlay(self, over: RawConfig) -> RawConfig {
        macro_rules! pick {
            ($($f:ident).+) => { over.$($f).+.or(self.$($f).+) };
        }
        RawConfig {
            listen: pick!(listen),
            tunnel_listen: pick!(tunnel_listen),
            fernet_keys: pick!(fernet_keys),
            workers: pick!(workers),
            pin_workers: pick!(pin_workers),
            admin: pick!(admin),
            trust_proxy_protocol: pick!(trust_proxy_protocol),
            listeners: pick!(listeners),
            trim_memory: pick!(trim_memory),
            io: pick!(io),
            limits: RawLimits {
                max_tunnels: pick!(limits.max_tunnels),
                max_channels_per_tunnel: pick!(limits.max_channels_per_tunnel),
                max_connections: pick!(limits.max_connections),
                max_pending_handshakes: pick!(limits.max_pending_handshakes),
                max_hello_len: pick!(limits.max_hello_len),
                max_frame_size: pick!(limits.max_frame_size),
                channel_pause_bytes: pick!(limits.channel_pause_bytes),
                channel_resume_bytes: pick!(limits.channel_resume_bytes),
                channel_queue_max: pick!(limits.channel_queue_max),
                tunnel_queue_max: pick!(limits.tunnel_queue_max),
                channel_send_high: pick!(limits.channel_send_high),
                channel_send_low: pick!(limits.channel_send_low),
            },
            timeouts: RawTimeouts {
                hello: pick!(timeouts.hello),
                handshake: pick!(timeouts.handshake),
                tunnel_idle: pick!(timeouts.tunnel_idle),
                channel_idle: pick!(timeouts.channel_idle),
                write: pick!(timeouts.write),
                shutdown_grace: pick!(timeouts.shutdown_grace),
            },
        }
    }

    /// Applies defaults, reads the key file and validates everything.
    pub fn resolve(mut self) -> Result<EdgeConfig, ConfigError> {
        let path = self.fernet_keys.take().ok_or_else(|| {
            invalid(
                "fernet_keys",
                "no Fernet key file; give --fernet-keys FILE (make a key with `sluice token new-key`)",
            )
        })?;
        let fernet_keys = read_keys(&path)?;
        self.resolve_with(fernet_keys, Some(path))
    }

    /// The one place defaults are applied: everything but the key file, which the caller read.
    fn resolve_with(
        self,
        fernet_keys: Vec<FernetKey>,
        fernet_keys_path: Option<PathBuf>,
    ) -> Result<EdgeConfig, ConfigError> {
        let workers = match self.workers.unwrap_or(defaults::WORKERS_PER_CPU) {
            defaults::WORKERS_PER_CPU => {
                std::thread::available_parallelism().map_or(1, |n| n.get())
            }
            n => n,
        };
        let l = self.limits;
        let t = self.timeouts;
        let base = MuxConfig::server();
        if self.listeners.is_some()
            && (self.listen.is_some()
                || self.tunnel_listen.is_some()
                || self.trust_proxy_protocol.is_some())
        {
            return Err(invalid(
                "listeners",
                "[[listeners]] replaces listen, tunnel_listen and trust_proxy_protocol: use one \
                 way or the other",
            ));
        }
        let config = EdgeConfig {
            listeners: self.listeners.unwrap_or_default(),
            listen: self.listen.unwrap_or_else(|| vec![defaults::LISTEN]),
            tunnel_listen: self.tunnel_listen.unwrap_or_default(),
            fernet_keys,
            fernet_keys_path,
            workers,
            pin_workers: self.pin_workers.unwrap_or(defaults::PIN_WORKERS),
            admin: self.admin,
            trust_proxy_protocol: self
                .trust_proxy_protocol
                .unwrap_or(defaults::TRUST_PROXY_PROTOCOL),
            trim_memory: self.trim_memory.unwrap_or(defaults::TRIM_MEMORY),
            io: self.io.unwrap_or_default(),
            limits: Limits {
                max_tunnels: l.max_tunnels.unwrap_or(defaults::MAX_TUNNELS),
                max_connections: l.max_connections.unwrap_or(defaults::MAX_CONNECTIONS),
                max_pending_handshakes: l
                    .max_pending_handshakes
                    .unwrap_or(defaults::MAX_PENDING_HANDSHAKES),
                max_hello_len: l.max_hello_len.unwrap_or(defaults::MAX_HELLO_LEN),
            },
            timeouts: Timeouts {
                hello: t.hello.unwrap_or(defaults::HELLO_TIMEOUT),
                handshake: t.handshake.unwrap_or(defaults::HANDSHAKE_TIMEOUT),
                write: t.write.unwrap_or(defaults::WRITE_TIMEOUT),
                shutdown_grace: t.shutdown_grace.unwrap_or(defaults::SHUTDOWN_GRACE),
            },
            mux: MuxConfig {
                max_frame_size: l.max_frame_size.unwrap_or(base.max_frame_size),
                max_channels: l.max_channels_per_tunnel.unwrap_or(base.max_channels),
                incoming_high: l.channel_pause_bytes.unwrap_or(base.incoming_high),
                incoming_low: l.channel_resume_bytes.unwrap_or(base.incoming_low),
                channel_incoming_max: l.channel_queue_max.unwrap_or(base.channel_incoming_max),
                tunnel_incoming_max: l.tunnel_queue_max.unwrap_or(base.tunnel_incoming_max),
                outgoing_high: l.channel_send_high.unwrap_or(base.outgoing_high),
                outgoing_low: l.channel_send_low.unwrap_or(base.outgoing_low),
                idle_timeout: Some(t.tunnel_idle.unwrap_or(defaults::TUNNEL_IDLE_TIMEOUT)),
                channel_idle_timeout: Some(
                    t.channel_idle.unwrap_or(defaults::CHANNEL_IDLE_TIMEOUT),
                ),
                ..base
            },
        };
        config.validate()?;
        Ok(config)
    }
}

/// Reads a Fernet key file: one urlsafe-base64 key per line; blank lines and `#` comments are
/// ignored. At least one key is required.
pub fn read_keys(path: &Path) -> Result<Vec<FernetKey>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_keys(&text).map_err(|line| match line {
        0 => invalid("fernet_keys", format!("{} holds no key", path.display())),
        line => ConfigError::BadKey {
            path: path.to_owned(),
            line,
        },
    })
}

/// Parses key-file text ([`sluice_proto::token::parse_key_file`]); `Err(line)` names the first
/// bad line, `Err(0)` an empty file.
pub fn parse_keys(text: &str) -> Result<Vec<FernetKey>, usize> {
    use sluice_proto::token::{KeyFileError, parse_key_file};
    parse_key_file(text).map_err(|e| match e {
        KeyFileError::Empty => 0,
        KeyFileError::BadKey { line, .. } => line,
    })
}

impl EdgeConfig {
    /// The listeners to bind: `listeners` if given, else `listen` (browsers, and tunnels too
    /// without `tunnel_listen`) and `tunnel_listen` (tunnels), all trusting a PROXY header or none
    /// as `trust_proxy_protocol` says.
    pub fn listener_specs(&self) -> Vec<ListenerSpec> {
        if !self.listeners.is_empty() {
            return self.listeners.clone();
        }
        let public_role = if self.tunnel_listen.is_empty() {
            Role::Both
        } else {
            Role::Browsers
        };
        let spec = |addr: &SocketAddr, role| ListenerSpec {
            addr: *addr,
            role,
            trust_proxy_protocol: self.trust_proxy_protocol,
        };
        self.listen
            .iter()
            .map(|a| spec(a, public_role))
            .chain(self.tunnel_listen.iter().map(|a| spec(a, Role::Tunnels)))
            .collect()
    }

    /// A configuration for tests and embedding: the given keys and the defaults, except the
    /// settings [`FOR_KEYS_DIFFERENCES`] names: loopback port 0 (no fixed port to collide on),
    /// one worker, no pinning (tests share CPUs), and no key file.
    pub fn for_keys(keys: Vec<FernetKey>) -> Self {
        let raw = RawConfig {
            listen: Some(vec![SocketAddr::from(([127, 0, 0, 1], 0))]),
            workers: Some(1),
            pin_workers: Some(false),
            ..RawConfig::default()
        };
        // The defaults validate (a test resolves them), and so do these three changes; the
        // keys are the only input, and `validate` asks nothing of them.
        raw.resolve_with(keys, None)
            .unwrap_or_else(|e| unreachable!("the defaults for tests do not validate: {e}"))
    }

    /// Checks every value and their consistency, naming the setting as the file does.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let setting = if self.listeners.is_empty() {
            "listen"
        } else {
            "listeners"
        };
        let specs = self.listener_specs();
        if specs.is_empty() {
            return Err(invalid(setting, "at least one address is needed"));
        }
        let mut all: Vec<SocketAddr> = specs.iter().map(|s| s.addr).collect();
        all.sort();
        if let Some(w) = all.windows(2).find(|w| w[0] == w[1] && w[0].port() != 0) {
            return Err(invalid(setting, format!("{} is listed twice", w[0])));
        }
        match self.workers {
            0 => {
                return Err(invalid(
                    "workers",
                    "must be at least 1 (a config file's `workers = 0` means one per CPU, \
                     resolved before the edge starts)",
                ));
            }
            n if n > defaults::MAX_WORKERS => {
                return Err(invalid(
                    "workers",
                    format!("at most {}", defaults::MAX_WORKERS),
                ));
            }
            _ => {}
        }
        let positive = |name: &'static str, v: usize| match v {
            0 => Err(invalid(name, "must be at least 1")),
            _ => Ok(()),
        };
        let l = &self.limits;
        positive("limits.max_tunnels", l.max_tunnels)?;
        positive("limits.max_connections", l.max_connections)?;
        positive("limits.max_pending_handshakes", l.max_pending_handshakes)?;
        positive("limits.max_channels_per_tunnel", self.mux.max_channels)?;
        if !(defaults::MIN_HELLO_LEN..=MAX_HELLO_LEN_LIMIT).contains(&l.max_hello_len) {
            return Err(invalid(
                "limits.max_hello_len",
                format!(
                    "must be between {} and {MAX_HELLO_LEN_LIMIT}",
                    defaults::MIN_HELLO_LEN
                ),
            ));
        }
        // Every wait has a bound: the edge's multiplexer timeouts are never off.
        let duration = |name: &'static str, d: Option<Duration>| match d {
            Some(d) if !d.is_zero() => Ok(()),
            _ => Err(invalid(name, "must be positive")),
        };
        let t = &self.timeouts;
        duration("timeouts.hello", Some(t.hello))?;
        duration("timeouts.handshake", Some(t.handshake))?;
        duration("timeouts.write", Some(t.write))?;
        duration("timeouts.shutdown_grace", Some(t.shutdown_grace))?;
        duration("timeouts.tunnel_idle", self.mux.idle_timeout)?;
        duration("timeouts.channel_idle", self.mux.channel_idle_timeout)?;
        self.mux.validate().map_err(|e| invalid("limits", e.0))
    }
}

/// What [`EdgeConfig::for_keys`] sets differently from [`RawConfig::resolve`] of a file that
/// names only its key file, by field; everything else is the same (a test holds them to it).
pub const FOR_KEYS_DIFFERENCES: [&str; 4] =
    ["listen", "workers", "pin_workers", "fernet_keys_path"];

#[cfg(test)]
mod tests;
