//! Per-tunnel views for operators, without a metric label per host: `GET /tunnels` lists the
//! tunnels of every worker, `GET /tunnels/HOST` shows the one serving a host name.
//!
//! The admin thread asks each worker over its inbox and waits at most [`INSPECT_TIMEOUT`] for
//! each answer: a worker never blocks on the admin, and an admin request never holds a
//! worker's state. The listing is bounded ([`DEFAULT_LIST`], at most [`MAX_LIST`] with
//! `?limit=N`), largest tunnels (by channels, then bytes) first.

use std::sync::mpsc::SyncSender;
use std::time::Duration;

use serde::Serialize;
use sluice_proto::Hostname;

/// Tunnels listed when no `limit` is given.
pub const DEFAULT_LIST: usize = 100;
/// Most tunnels one listing may hold.
pub const MAX_LIST: usize = 1000;
/// How long the admin thread waits for one worker's answer.
pub const INSPECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What an operator sees of one tunnel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TunnelView {
    /// The worker that owns it.
    pub worker: usize,
    /// Its primary host name.
    pub host: String,
    /// The other names it serves.
    pub aliases: Vec<String>,
    /// Multiplexer protocol version.
    pub protocol: u8,
    /// Tunnel cipher.
    pub cipher: &'static str,
    /// The connector's address.
    pub remote: String,
    /// Channels open now.
    pub channels: usize,
    /// DATA bytes from the tunnel (towards browsers).
    pub bytes_in: u64,
    /// DATA bytes into the tunnel (from browsers).
    pub bytes_out: u64,
    /// Bytes received from the tunnel not yet written to browsers.
    pub queued: usize,
    /// Channels closed for overrun.
    pub overruns: u64,
    /// Seconds since it connected.
    pub age_s: u64,
}

/// What the admin asks a worker.
#[derive(Debug)]
pub(crate) struct Inspect {
    /// One host (primary or alias), or every tunnel up to `limit`.
    pub(crate) host: Option<Hostname>,
    pub(crate) limit: usize,
    pub(crate) reply: SyncSender<Answer>,
}

/// One worker's answer: its busiest tunnels (or the one asked for) and how many it has.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) views: Vec<TunnelView>,
    pub(crate) total: usize,
}

/// A parsed admin path under `/tunnels`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Query {
    List { limit: usize },
    Host(Hostname),
}

/// Why a `/tunnels` path is refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BadQuery {
    NotTunnels,
    BadLimit,
    BadHost,
}

/// Parses `/tunnels`, `/tunnels?limit=N` and `/tunnels/HOST`.
pub(crate) fn parse(path: &str) -> Result<Query, BadQuery> {
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    if path == "/tunnels" || path == "/tunnels/" {
        let mut limit = DEFAULT_LIST;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("limit", v)) => {
                    limit = v.parse().map_err(|_| BadQuery::BadLimit)?;
                    if limit == 0 || limit > MAX_LIST {
                        return Err(BadQuery::BadLimit);
                    }
                }
                _ => return Err(BadQuery::BadLimit),
            }
        }
        return Ok(Query::List { limit });
    }
    let host = path.strip_prefix("/tunnels/").ok_or(BadQuery::NotTunnels)?;
    Hostname::parse(host.as_bytes())
        .map(Query::Host)
        .map_err(|_| BadQuery::BadHost)
}

/// Orders the views (largest first) and keeps at most `limit`.
pub(crate) fn rank(mut views: Vec<TunnelView>, limit: usize) -> Vec<TunnelView> {
    views.sort_by(|a, b| {
        (b.channels, b.bytes_in + b.bytes_out, &a.host).cmp(&(
            a.channels,
            a.bytes_in + a.bytes_out,
            &b.host,
        ))
    });
    views.truncate(limit);
    views
}

/// The answer to `GET /tunnels`: the views, whether the list was cut, and how many workers
/// did not answer in time.
#[derive(Debug, Serialize)]
pub(crate) struct Listing<'a> {
    pub(crate) tunnels: &'a [TunnelView],
    pub(crate) truncated: bool,
    pub(crate) workers_unanswered: usize,
}

impl Listing<'_> {
    pub(crate) fn render(&self) -> String {
        // Plain data: serialization cannot fail.
        let mut s = serde_json::to_string(self).unwrap_or_default();
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(host: &str, channels: usize, bytes: u64) -> TunnelView {
        TunnelView {
            worker: 0,
            host: host.into(),
            aliases: vec![],
            protocol: 2,
            cipher: "aes-gcm",
            remote: "127.0.0.1:1".into(),
            channels,
            bytes_in: bytes,
            bytes_out: 0,
            queued: 0,
            overruns: 0,
            age_s: 1,
        }
    }

    #[test]
    fn paths_parse_or_are_refused() {
        assert_eq!(
            parse("/tunnels"),
            Ok(Query::List {
                limit: DEFAULT_LIST
            })
        );
        assert_eq!(parse("/tunnels?limit=5"), Ok(Query::List { limit: 5 }));
        assert_eq!(parse("/tunnels?limit=0"), Err(BadQuery::BadLimit));
        assert_eq!(parse("/tunnels?limit=1001"), Err(BadQuery::BadLimit));
        assert_eq!(parse("/tunnels?limit=x"), Err(BadQuery::BadLimit));
        assert_eq!(parse("/tunnels?other=1"), Err(BadQuery::BadLimit));
        assert_eq!(
            parse("/tunnels/A.Example.test"),
            Ok(Query::Host(Hostname::parse(b"a.example.test").unwrap()))
        );
        assert_eq!(parse("/tunnels/bad host"), Err(BadQuery::BadHost));
        assert_eq!(parse("/metrics"), Err(BadQuery::NotTunnels));
    }

    #[test]
    fn the_busiest_come_first_and_the_list_is_cut() {
        let views = vec![view("a", 1, 10), view("b", 3, 0), view("c", 1, 99)];
        let ranked = rank(views, 2);
        let hosts: Vec<_> = ranked.iter().map(|v| v.host.as_str()).collect();
        assert_eq!(hosts, ["b", "c"]);
    }

    #[test]
    fn the_listing_is_json_with_every_field() {
        let mut v = view("a.example.test", 2, 5);
        v.aliases = vec!["b.example.test".into()];
        let views = [v];
        let s = Listing {
            tunnels: &views,
            truncated: true,
            workers_unanswered: 0,
        }
        .render();
        let j: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(j["truncated"], true);
        assert_eq!(j["tunnels"][0]["host"], "a.example.test");
        assert_eq!(j["tunnels"][0]["aliases"][0], "b.example.test");
        assert_eq!(j["tunnels"][0]["channels"], 2);
        assert_eq!(j["tunnels"][0]["cipher"], "aes-gcm");
    }
}
