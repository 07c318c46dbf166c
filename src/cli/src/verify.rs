//! `sluice verify`: is the certificate served at the public address the local one?

use anyhow::{Context, bail};
use clap::Args;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use sluice_connector::Fingerprints;
use sluice_connector::tls::{load_certs, peer_certificates};

/// Exit status when the check could not be made (no connection, bad arguments).
const EXIT_UNCHECKED: u8 = 2;

#[derive(Debug, Args)]
#[command(after_help = "\
Connects to the public address as a browser would (TLS with the name as SNI), takes the \
certificate presented there, and compares it with the first certificate in --cert. The TLS \
handshake proves the server holds that certificate's key; nothing else is trusted or checked. \
A mismatch means something between the public address and this server presents its own \
certificate: a TLS-terminating proxy, or a man in the middle.

Exit status: 0 the certificates match, 1 they differ, 2 the check could not be made.")]
pub(crate) struct VerifyArgs {
    /// The public address: https://NAME or https://NAME:PORT.
    #[arg(value_name = "URL")]
    url: String,
    /// The certificate the home side serves (PEM; the first certificate is compared).
    #[arg(long, value_name = "FILE")]
    cert: PathBuf,
    /// Connect to ADDR for NAME:PORT instead of resolving NAME (as curl's --resolve).
    #[arg(long, value_name = "NAME:PORT:ADDR")]
    resolve: Vec<String>,
    /// Give up after this long.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "10s")]
    timeout: Duration,
}

pub(crate) fn run(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    match check(&args) {
        Ok(code) => Ok(code),
        Err(e) => {
            eprintln!("sluice verify: {e:#}");
            Ok(ExitCode::from(EXIT_UNCHECKED))
        }
    }
}

fn check(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let (name, port) = parse_url(&args.url)?;
    let local = load_certs(&args.cert)?;
    let local = Fingerprints::of(&local[0]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let addr = match resolve_override(&args.resolve, &name, port)? {
        Some(addr) => addr,
        None => rt
            .block_on(tokio::net::lookup_host((name.as_str(), port)))
            .with_context(|| format!("cannot resolve {name}"))?
            .next()
            .with_context(|| format!("{name} has no address"))?,
    };
    let chain = rt.block_on(peer_certificates(addr, &name, args.timeout))?;
    let seen = Fingerprints::of(&chain[0]);
    println!("local certificate ({}):", args.cert.display());
    println!("  SHA-256 {}", local.sha256_hex());
    println!("  SHA-1   {}", local.sha1_hex());
    println!("served at https://{name}:{port} ({addr}):");
    println!("  SHA-256 {}", seen.sha256_hex());
    println!("  SHA-1   {}", seen.sha1_hex());
    if seen == local {
        println!("MATCH: the certificate served at https://{name}:{port} is the local one");
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "MISMATCH: https://{name}:{port} presents another certificate than {}: something \
             between the public address and this server terminates TLS (a proxy, or a man in \
             the middle)",
            args.cert.display()
        );
        Ok(ExitCode::from(1))
    }
}

fn parse_url(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url
        .strip_prefix("https://")
        .with_context(|| format!("{url:?} is not an https:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (name, port) = match authority.rsplit_once(':') {
        Some((n, p)) => (
            n,
            p.parse().with_context(|| format!("bad port in {url:?}"))?,
        ),
        None => (authority, 443),
    };
    if name.is_empty() || name.starts_with('[') || name.parse::<IpAddr>().is_ok() {
        bail!("{url:?} must name a host (the certificate is chosen by name)");
    }
    Ok((name.to_ascii_lowercase(), port))
}

fn resolve_override(list: &[String], name: &str, port: u16) -> anyhow::Result<Option<SocketAddr>> {
    for entry in list {
        let mut parts = entry.splitn(3, ':');
        let (Some(n), Some(p), Some(a)) = (parts.next(), parts.next(), parts.next()) else {
            bail!("--resolve {entry:?} is not NAME:PORT:ADDR");
        };
        let p: u16 = p
            .parse()
            .with_context(|| format!("bad port in --resolve {entry:?}"))?;
        let ip: IpAddr = a
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .with_context(|| format!("bad address in --resolve {entry:?}"))?;
        if n.eq_ignore_ascii_case(name) && p == port {
            return Ok(Some(SocketAddr::new(ip, p)));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls_and_resolve_entries() {
        assert_eq!(
            parse_url("https://A.example:8443/x").unwrap(),
            ("a.example".into(), 8443)
        );
        assert_eq!(
            parse_url("https://a.example").unwrap(),
            ("a.example".into(), 443)
        );
        assert!(parse_url("http://a.example").is_err());
        assert!(parse_url("https://127.0.0.1:443").is_err());
        let list = vec![
            "b.example:1:127.0.0.2".to_owned(),
            "a.example:8443:127.0.0.1".to_owned(),
        ];
        assert_eq!(
            resolve_override(&list, "a.example", 8443).unwrap(),
            Some("127.0.0.1:8443".parse().unwrap())
        );
        assert_eq!(resolve_override(&list, "a.example", 443).unwrap(), None);
        assert!(resolve_override(&["x".into()], "a", 1).is_err());
    }
}
