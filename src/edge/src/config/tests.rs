use super::*;

fn keyfile(dir: &Path) -> PathBuf {
    let path = dir.join("keys");
    std::fs::write(
        &path,
        "# current\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n\n",
    )
    .unwrap();
    path
}

fn tmp() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sluice-config-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn defaults_serve_a_newcomer_on_loopback() {
    let dir = tmp();
    let raw = RawConfig {
        fernet_keys: Some(keyfile(&dir)),
        ..Default::default()
    };
    let c = raw.resolve().unwrap();
    assert_eq!(c.listen, vec![DEFAULT_LISTEN]);
    assert!(c.tunnel_listen.is_empty());
    assert_eq!(c.fernet_keys.len(), 1);
    assert!(c.workers >= 1);
    assert_eq!(c.io, IoDriver::Auto);
    assert_eq!(c.mux.max_channels, 1024);
    assert_eq!(c.timeouts.hello, Duration::from_secs(10));
}

#[test]
fn flags_win_over_the_file() {
    let dir = tmp();
    let file = RawConfig::from_toml(&format!(
        r#"
listen = ["127.0.0.1:1000"]
fernet_keys = "{}"
workers = 3
[limits]
max_tunnels = 10
[timeouts]
hello = "5s"
tunnel_idle = "2m"
"#,
        keyfile(&dir).display()
    ))
    .unwrap();
    let flags = RawConfig {
        workers: Some(2),
        timeouts: RawTimeouts {
            hello: Some(Duration::from_secs(1)),
            ..Default::default()
        },
        ..Default::default()
    };
    let c = file.overlay(flags).resolve().unwrap();
    assert_eq!(c.workers, 2);
    assert_eq!(
        c.listen,
        vec!["127.0.0.1:1000".parse::<SocketAddr>().unwrap()]
    );
    assert_eq!(c.limits.max_tunnels, 10);
    assert_eq!(c.timeouts.hello, Duration::from_secs(1));
    assert_eq!(c.mux.idle_timeout, Some(Duration::from_secs(120)));
}

#[test]
fn bad_configs_are_refused_with_the_setting_named() {
    let dir = tmp();
    let keys = keyfile(&dir);
    let check = |toml: &str, needle: &str| {
        let raw = RawConfig::from_toml(toml);
        let err = match raw {
            Err(e) => e,
            Ok(raw) => {
                let raw = RawConfig {
                    fernet_keys: raw.fernet_keys.clone().or(Some(keys.clone())),
                    ..raw
                };
                raw.resolve().unwrap_err().to_string()
            }
        };
        assert!(err.contains(needle), "{toml:?}: {err}");
    };
    check("listen = []", "listen");
    check("lisen = [\"127.0.0.1:1\"]", "unknown field");
    check("listen = [\"not an address\"]", "invalid socket address");
    check(
        "listen = [\"127.0.0.1:9\", \"127.0.0.1:9\"]",
        "listed twice",
    );
    check("workers = 5000", "workers");
    check("[limits]\nmax_tunnels = 0", "limits.max_tunnels");
    check("[limits]\nmax_hello_len = 100", "limits.max_hello_len");
    check(
        "[limits]\nchannel_pause_bytes = 10\nchannel_resume_bytes = 20",
        "incoming_low",
    );
    check("[timeouts]\nhello = \"0s\"", "timeouts.hello");
    check("[timeouts]\nhello = \"soon\"", "line 2");
    check("io = \"kqueue\"", "io");
    check("fernet_keys = \"/nonexistent/keys\"", "/nonexistent/keys");
}

#[test]
fn key_files_name_the_bad_line() {
    assert_eq!(parse_keys("# only a comment\n"), Err(0));
    assert_eq!(
        parse_keys("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nnope\n"),
        Err(2)
    );
    assert_eq!(
        parse_keys(" AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= \n")
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn the_shipped_example_config_parses_and_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/edge.toml");
    let raw = RawConfig::from_file(&path).unwrap();
    // Point the key file somewhere that exists; everything else is as shipped.
    let dir = tmp();
    let c = RawConfig {
        fernet_keys: Some(keyfile(&dir)),
        ..raw
    }
    .resolve()
    .unwrap();
    assert_eq!(c.listen.len(), 2);
    assert_eq!(c.admin, Some("127.0.0.1:9090".parse().unwrap()));
    // The example lists the defaults: it must agree with them.
    let defaults = RawConfig {
        listen: Some(c.listen.clone()),
        admin: c.admin,
        fernet_keys: Some(keyfile(&dir)),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    assert_eq!(c.limits, defaults.limits);
    assert_eq!(c.timeouts, defaults.timeouts);
    assert_eq!(c.mux, defaults.mux);
    assert_eq!(
        (c.pin_workers, c.trust_proxy_protocol, c.io),
        (
            defaults.pin_workers,
            defaults.trust_proxy_protocol,
            defaults.io
        )
    );
}

#[test]
fn for_keys_is_the_resolved_defaults_but_for_the_named_differences() {
    let dir = tmp();
    let resolved = RawConfig {
        fernet_keys: Some(keyfile(&dir)),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let for_keys = EdgeConfig::for_keys(resolved.fernet_keys.clone());
    // Each named difference is a real one: the test defaults are not the file's defaults.
    assert_eq!(FOR_KEYS_DIFFERENCES.len(), 4);
    assert_ne!(for_keys.listen, resolved.listen);
    assert_eq!(for_keys.listen, vec![SocketAddr::from(([127, 0, 0, 1], 0))]);
    assert_eq!(for_keys.workers, 1);
    assert!(resolved.pin_workers && !for_keys.pin_workers);
    assert!(resolved.fernet_keys_path.is_some() && for_keys.fernet_keys_path.is_none());
    // Everything else agrees, field by field (the struct's own equality, with the named
    // fields copied over).
    let aligned = EdgeConfig {
        listen: resolved.listen.clone(),
        workers: resolved.workers,
        pin_workers: resolved.pin_workers,
        fernet_keys_path: resolved.fernet_keys_path.clone(),
        ..for_keys
    };
    assert_eq!(aligned, resolved);
}

#[test]
fn zero_workers_in_a_file_means_one_per_cpu_but_a_config_with_zero_is_invalid() {
    let dir = tmp();
    let c = RawConfig {
        fernet_keys: Some(keyfile(&dir)),
        workers: Some(0),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(c.workers, cpus);
    let zero = EdgeConfig { workers: 0, ..c };
    let err = zero.validate().unwrap_err().to_string();
    assert!(
        err.contains("`workers`") && err.contains("at least 1"),
        "{err}"
    );
}

#[test]
fn validate_refuses_what_resolve_would_refuse() {
    let base = EdgeConfig::for_keys(Vec::new());
    base.validate().unwrap();
    type Spoil = fn(&mut EdgeConfig);
    let cases: [(&str, Spoil); 6] = [
        ("listen", |c| c.listen.clear()),
        ("workers", |c| c.workers = defaults::MAX_WORKERS + 1),
        ("limits.max_connections", |c| c.limits.max_connections = 0),
        ("limits.max_hello_len", |c| c.limits.max_hello_len = 10),
        ("timeouts.write", |c| c.timeouts.write = Duration::ZERO),
        ("timeouts.tunnel_idle", |c| c.mux.idle_timeout = None),
    ];
    for (setting, spoil) in cases {
        let mut c = base.clone();
        spoil(&mut c);
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains(&format!("`{setting}`")), "{setting}: {err}");
    }
}

#[test]
fn listeners_are_given_one_by_one_with_their_roles_and_trust() {
    use crate::listener::{ListenerSpec, Role};
    let dir = tmp();
    let keys = keyfile(&dir);
    let raw = RawConfig::from_toml(&format!(
        r#"
        fernet_keys = "{}"
        [[listeners]]
        addr = "127.0.0.1:8443"
        role = "browsers"
        trust_proxy_protocol = true
        [[listeners]]
        addr = "127.0.0.1:8444"
        role = "tunnels"
        "#,
        keys.display()
    ))
    .unwrap();
    let c = raw.resolve().unwrap();
    let specs = c.listener_specs();
    assert_eq!(
        specs,
        vec![
            ListenerSpec {
                addr: "127.0.0.1:8443".parse().unwrap(),
                role: Role::Browsers,
                trust_proxy_protocol: true,
            },
            ListenerSpec {
                addr: "127.0.0.1:8444".parse().unwrap(),
                role: Role::Tunnels,
                trust_proxy_protocol: false,
            },
        ]
    );
    let k = specs[0].kind();
    assert!(k.browsers && !k.tunnels && k.trust_proxy);
    // The old keys still mean what they meant.
    let old = RawConfig {
        listen: Some(vec!["127.0.0.1:1".parse().unwrap()]),
        tunnel_listen: Some(vec!["127.0.0.1:2".parse().unwrap()]),
        trust_proxy_protocol: Some(true),
        fernet_keys: Some(keys.clone()),
        ..Default::default()
    }
    .resolve()
    .unwrap();
    let roles: Vec<_> = old
        .listener_specs()
        .iter()
        .map(|s| (s.role, s.trust_proxy_protocol))
        .collect();
    assert_eq!(roles, [(Role::Browsers, true), (Role::Tunnels, true)]);
    // `peer_listen`, the tunnel listener's name before, still reads as `tunnel_listen`; a file
    // that spells it both ways is refused rather than one silently winning.
    let renamed = RawConfig::from_toml("peer_listen = [\"127.0.0.1:2\"]\n").unwrap();
    assert_eq!(
        renamed.tunnel_listen,
        Some(vec!["127.0.0.1:2".parse().unwrap()])
    );
    assert!(
        RawConfig::from_toml(
            "peer_listen = [\"127.0.0.1:2\"]\ntunnel_listen = [\"127.0.0.1:3\"]\n"
        )
        .is_err()
    );
    // Mixing both ways, or a listener twice, is refused with the setting named.
    let mixed = RawConfig::from_toml(&format!(
        "fernet_keys = \"{}\"\nlisten = [\"127.0.0.1:1\"]\n[[listeners]]\naddr = \"127.0.0.1:2\"\n",
        keys.display()
    ))
    .unwrap()
    .resolve()
    .unwrap_err()
    .to_string();
    assert!(mixed.contains("listeners"), "{mixed}");
    let twice = RawConfig::from_toml(&format!(
        "fernet_keys = \"{}\"\n[[listeners]]\naddr = \"127.0.0.1:2\"\n[[listeners]]\naddr = \"127.0.0.1:2\"\nrole = \"tunnels\"\n",
        keys.display()
    ))
    .unwrap()
    .resolve()
    .unwrap_err()
    .to_string();
    assert!(twice.contains("listed twice"), "{twice}");
    let bad_role =
        RawConfig::from_toml("[[listeners]]\naddr = \"127.0.0.1:2\"\nrole = \"everyone\"\n");
    assert!(bad_role.is_err());
}
