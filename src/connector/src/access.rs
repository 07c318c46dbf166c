//! Which callers may reach the home server: networks to allow and to block, checked for each
//! channel before a byte of it reaches the local endpoint.

use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An access list. Empty, it lets everyone in.
///
/// - A caller in a `block` network is refused.
/// - Otherwise, if there are `allow` networks, only a caller in one of them gets in.
/// - A channel whose caller the edge did not report (an unusable address) is refused when
///   there are `allow` networks, since it cannot be shown to be in one.
///
/// IPv4-mapped IPv6 callers (`::ffff:192.0.2.1`) are matched as the IPv4 address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessList {
    allow: Vec<IpNet>,
    block: Vec<IpNet>,
}

/// A network that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP address or a network like 192.0.2.0/24 or 2001:db8::/32")]
pub struct BadNetwork(pub String);

/// Parses `192.0.2.0/24`, `2001:db8::/32`, or a bare address (a /32 or /128).
pub fn parse_network(text: &str) -> Result<IpNet, BadNetwork> {
    let text = text.trim();
    if let Ok(net) = IpNet::from_str(text) {
        return Ok(net.trunc());
    }
    IpAddr::from_str(text)
        .map(IpNet::from)
        .map_err(|_| BadNetwork(text.to_owned()))
}

impl AccessList {
    /// Lets everyone in.
    pub fn open() -> Self {
        Self::default()
    }

    /// Adds networks that may connect (then only they may).
    pub fn allow(mut self, nets: impl IntoIterator<Item = IpNet>) -> Self {
        self.allow.extend(nets);
        self
    }

    /// Adds networks that may not connect.
    pub fn block(mut self, nets: impl IntoIterator<Item = IpNet>) -> Self {
        self.block.extend(nets);
        self
    }

    /// Whether a caller may reach the home server.
    pub fn permits(&self, caller: Option<IpAddr>) -> bool {
        let Some(ip) = caller.map(|ip| ip.to_canonical()) else {
            return self.allow.is_empty();
        };
        if self.block.iter().any(|n| n.contains(&ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|n| n.contains(&ip))
    }

    /// Whether the list lets everyone in.
    pub fn is_open(&self) -> bool {
        self.allow.is_empty() && self.block.is_empty()
    }
}

impl fmt::Display for AccessList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_open() {
            return f.write_str("everyone");
        }
        let list = |v: &[IpNet]| {
            v.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        match (self.allow.is_empty(), self.block.is_empty()) {
            (false, true) => write!(f, "allow {}", list(&self.allow)),
            (true, false) => write!(f, "block {}", list(&self.block)),
            _ => write!(
                f,
                "allow {} except {}",
                list(&self.allow),
                list(&self.block)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| parse_network(s).unwrap()).collect()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn parses_networks_and_bare_addresses() {
        assert_eq!(
            parse_network("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_network(" 192.0.2.7 ").unwrap().to_string(),
            "192.0.2.7/32"
        );
        assert_eq!(
            parse_network("2001:db8::1").unwrap().to_string(),
            "2001:db8::1/128"
        );
        assert!(parse_network("10.0.0.0/33").is_err());
        assert!(parse_network("example.com").is_err());
    }

    #[test]
    fn decides_per_caller() {
        let open = AccessList::open();
        assert!(open.permits(ip("203.0.113.9")) && open.permits(None));

        let allow = AccessList::open().allow(nets(&["192.0.2.0/24", "2001:db8::/32"]));
        assert!(allow.permits(ip("192.0.2.200")));
        assert!(
            allow.permits(ip("::ffff:192.0.2.1")),
            "IPv4-mapped matches as IPv4"
        );
        assert!(allow.permits(ip("2001:db8::5")));
        assert!(!allow.permits(ip("198.51.100.1")));
        assert!(
            !allow.permits(None),
            "an unknown caller is not in an allowed network"
        );

        let block = AccessList::open().block(nets(&["198.51.100.0/24"]));
        assert!(!block.permits(ip("198.51.100.1")));
        assert!(block.permits(ip("192.0.2.1")) && block.permits(None));

        let both = AccessList::open()
            .allow(nets(&["10.0.0.0/8"]))
            .block(nets(&["10.1.0.0/16"]));
        assert!(both.permits(ip("10.2.0.1")));
        assert!(!both.permits(ip("10.1.0.1")), "block wins over allow");
        assert_eq!(both.to_string(), "allow 10.0.0.0/8 except 10.1.0.0/16");
    }
}
