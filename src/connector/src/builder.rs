//! Configuring and starting a connector.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use sluice_proto::mux::MuxConfig;

use crate::config::{Endpoint, ServeConfig, Timeouts};
use crate::credentials::CredentialSource;
use crate::handle::ConnectorHandle;
use crate::supervisor::{self, Desired, Supervisor, Want};
use crate::{AccessList, Backoff, Error, State};

/// The entry point: [`Connector::builder`].
#[derive(Debug)]
pub struct Connector;

impl Connector {
    /// Starts configuring a connector for the edge at `edge` (`host:port`, resolved at each
    /// connection) with credentials from `credentials`. Choose an endpoint with
    /// [`Builder::passthrough`] or [`Builder::terminate`].
    pub fn builder(edge: impl Into<String>, credentials: CredentialSource) -> Builder {
        Builder {
            edge: edge.into(),
            source: credentials,
            endpoint: None,
            proxy_protocol: false,
            forwarded_headers: true,
            access: AccessList::open(),
            backoff: Backoff::default(),
            timeouts: Timeouts::default(),
            refresh_before: Duration::from_secs(300),
            allow_gcm_key_reuse: false,
            autoconnect: true,
            mux: MuxConfig::client(),
        }
    }
}

/// A connector's configuration; [`Builder::build`] starts it.
#[derive(Debug)]
pub struct Builder {
    edge: String,
    source: CredentialSource,
    endpoint: Option<Endpoint>,
    proxy_protocol: bool,
    forwarded_headers: bool,
    access: AccessList,
    backoff: Backoff,
    timeouts: Timeouts,
    refresh_before: Duration,
    allow_gcm_key_reuse: bool,
    autoconnect: bool,
    mux: MuxConfig,
}

impl Builder {
    /// Passthrough mode: each channel's bytes (the browser's TLS) go as they are to the TLS
    /// server at `addr` (`host:port`).
    pub fn passthrough(mut self, addr: impl Into<String>) -> Self {
        self.endpoint = Some(Endpoint::Passthrough { addr: addr.into() });
        self
    }

    /// Terminate mode: the connector is the TLS server (`tls`, see [`crate::tls::server_config`])
    /// and sends plain HTTP/1.1 to `http_addr` (`host:port`).
    pub fn terminate(
        mut self,
        tls: Arc<rustls::ServerConfig>,
        http_addr: impl Into<String>,
    ) -> Self {
        self.endpoint = Some(Endpoint::Terminate {
            tls: TlsAcceptor::from(tls),
            http: http_addr.into(),
            forwarded_headers: self.forwarded_headers,
        });
        self
    }

    /// Sends a PROXY protocol v2 header with the caller's address first on every connection to
    /// the local endpoint (either mode). The home server must expect it. Off by default.
    pub fn proxy_protocol(mut self, on: bool) -> Self {
        self.proxy_protocol = on;
        self
    }

    /// Terminate mode: replaces `X-Forwarded-For`, `X-Forwarded-Proto` and `Forwarded` in every
    /// request with the caller's address (what the browser sent there is dropped). On by
    /// default.
    pub fn forwarded_headers(mut self, on: bool) -> Self {
        self.forwarded_headers = on;
        if let Some(Endpoint::Terminate {
            forwarded_headers, ..
        }) = &mut self.endpoint
        {
            *forwarded_headers = on;
        }
        self
    }

    /// Who may reach the home server; everyone by default.
    pub fn access_list(mut self, access: AccessList) -> Self {
        self.access = access;
        self
    }

    /// The reconnect policy.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// The bounds on every wait.
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// How long before the token's expiry to fetch fresh credentials (default 5 minutes; never
    /// later than halfway to the expiry). Ignored for [`CredentialSource::Static`].
    pub fn refresh_before(mut self, before: Duration) -> Self {
        self.refresh_before = before;
        self
    }

    /// Lets an aes-gcm key be used for more than one connection.
    ///
    /// **Dangerous.** SniTun's AES-GCM nonces are a counter that restarts at zero on every
    /// connection, so a second connection with the same key repeats nonces, which lets an
    /// observer recover the authentication key and read or forge frame headers. Without this,
    /// the connector refuses to reuse an aes-gcm key and waits for fresh credentials (a
    /// credentials command that mints a new key each time, or a rewritten file). Prefer
    /// aes-gcm-siv, which is safe with a reused key.
    pub fn danger_allow_gcm_key_reuse(mut self, allow: bool) -> Self {
        self.allow_gcm_key_reuse = allow;
        self
    }

    /// Whether to connect as soon as it is built (default) or wait for
    /// [`ConnectorHandle::connect`].
    pub fn autoconnect(mut self, on: bool) -> Self {
        self.autoconnect = on;
        self
    }

    /// Multiplexer limits and timers (default [`MuxConfig::client`]: a PING every 50 s).
    pub fn mux_config(mut self, mux: MuxConfig) -> Self {
        self.mux = mux;
        self
    }

    /// Validates the configuration and starts the connector on the current tokio runtime.
    pub fn build(self) -> Result<ConnectorHandle, Error> {
        let endpoint = self.endpoint.ok_or_else(|| {
            Error::Config("no local endpoint: choose passthrough or terminate".into())
        })?;
        if self.edge.trim().is_empty() {
            return Err(Error::Config("the edge address is empty".into()));
        }
        self.mux
            .validate()
            .map_err(|e| Error::Config(e.to_string()))?;
        if self.backoff.initial.is_zero() || self.backoff.max < self.backoff.initial {
            return Err(Error::Config(
                "backoff: initial must be positive and at most max".into(),
            ));
        }
        if let crate::CredentialSource::Command(argv) = &self.source
            && argv.is_empty()
        {
            return Err(Error::Config("the credentials command is empty".into()));
        }
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| Error::Config("build() must be called within a tokio runtime".into()))?;
        let serve = Arc::new(ServeConfig {
            endpoint,
            proxy_protocol: self.proxy_protocol,
            access: self.access,
            timeouts: self.timeouts,
            mux: self.mux,
        });
        let want = if self.autoconnect {
            Want::Connected
        } else {
            Want::Disconnected
        };
        let (desired_tx, desired_rx) = watch::channel(Desired {
            want,
            generation: 0,
        });
        let initial = if self.autoconnect {
            State::Connecting { attempt: 0 }
        } else {
            State::Disconnected
        };
        let (state_tx, state_rx) = watch::channel(initial);
        let sup = Supervisor {
            edge: self.edge,
            source: self.source,
            serve,
            backoff: self.backoff,
            refresh_before: self.refresh_before,
            allow_gcm_key_reuse: self.allow_gcm_key_reuse,
        };
        runtime.spawn(supervisor::run(sup, desired_rx, state_tx));
        Ok(ConnectorHandle::new(desired_tx, state_rx))
    }
}
