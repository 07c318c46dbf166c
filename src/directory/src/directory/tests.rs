//! The rules one at a time, with a scripted store.

use super::*;

const TTL: Duration = Duration::from_secs(3);
const RETRY: Duration = Duration::from_millis(500);
const MINE: LeaseId = LeaseId(1);
const THEIRS: LeaseId = LeaseId(2);

fn start() -> Instant {
    // An origin only: every time below is an offset from it.
    #[allow(clippy::disallowed_methods)]
    Instant::now()
}

fn name(n: &str) -> Hostname {
    n.parse().unwrap()
}

fn id(n: &str) -> EdgeId {
    n.parse().unwrap()
}

fn route_kv(n: &str, edge: &str, tunnel: u64, rev: u64, lease: LeaseId) -> KeyValue {
    KeyValue {
        key: Key::Route(name(n)).encode(),
        value: RouteValue {
            edge: id(edge),
            tunnel,
            primary: true,
        }
        .encode(),
        mod_revision: rev,
        lease: Some(lease),
    }
}

fn ops(d: &mut Directory) -> Vec<StoreOp> {
    std::iter::from_fn(|| d.poll_store()).collect()
}

fn actions(d: &mut Directory) -> Vec<EdgeAction> {
    std::iter::from_fn(|| d.poll_edge()).collect()
}

/// A directory for edge `a` with its lease granted and a snapshot of `kvs` at `rev` in;
/// the operations that followed are returned (registration, watch, claims).
fn ready(now: Instant, kvs: Vec<KeyValue>, rev: u64) -> (Directory, Vec<StoreOp>) {
    let config = Config {
        me: id("a"),
        fleet_addr: "10.0.0.1:4443".parse().unwrap(),
        lease_ttl: TTL,
        retry_after: RETRY,
    };
    let mut d = Directory::new(config, now);
    let first = ops(&mut d);
    assert!(
        matches!(first[0], StoreOp::Grant { ttl_secs: 3, .. }),
        "{first:?}"
    );
    assert!(matches!(first[1], StoreOp::Snapshot { .. }), "{first:?}");
    d.handle_lease_granted(now, first[0].id(), MINE, TTL);
    d.handle_snapshot(now, first[1].id(), kvs, rev);
    let rest = ops(&mut d);
    (d, rest)
}

fn claim_op(ops: &[StoreOp]) -> (OpId, u64) {
    ops.iter()
        .find_map(|o| match o {
            StoreOp::Claim {
                op,
                if_mod_revision,
                ..
            } => Some((*op, *if_mod_revision)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no claim in {ops:?}"))
}

#[test]
fn a_claim_replaces_the_claim_it_knew_of_and_takes_the_route_from_the_other_edge() {
    let now = start();
    let (mut d, _) = ready(now, vec![route_kv("h.test", "b", 7, 10, THEIRS)], 10);
    assert_eq!(
        actions(&mut d),
        vec![EdgeAction::InstallRemote {
            name: name("h.test"),
            edge: id("b"),
            revision: 10
        }]
    );
    d.handle_claimed(now, &[name("h.test")], 0, 1);
    let (op, basis) = claim_op(&ops(&mut d));
    assert_eq!(basis, 10);
    d.handle_claim(now, op, ClaimOutcome::Won { revision: 11 });
    d.handle_watch(now, WatchEvent::Put(route_kv("h.test", "a", 1, 11, MINE)));
    assert_eq!(
        actions(&mut d),
        vec![EdgeAction::RemoveRemote {
            name: name("h.test"),
            edge: id("b"),
            revision: 11
        }]
    );
    assert!(d.is_published());
}

#[test]
fn a_claim_that_lost_to_a_newer_one_yields_and_ends_its_tunnel() {
    let now = start();
    let (mut d, _) = ready(now, vec![], 5);
    d.handle_claimed(now, &[name("h.test")], 2, 1);
    let (op, basis) = claim_op(&ops(&mut d));
    assert_eq!(basis, 0);
    let current = Some(route_kv("h.test", "b", 9, 6, THEIRS));
    d.handle_claim(now, op, ClaimOutcome::Lost { current });
    assert_eq!(
        actions(&mut d),
        vec![EdgeAction::Yield {
            name: name("h.test"),
            worker: 2,
            seq: 1,
            primary: true
        }]
    );
    // Held, then taken over by a newer claim seen on the watch: the same.
    d.handle_claimed(now, &[name("g.test")], 0, 2);
    let (op, _) = claim_op(&ops(&mut d));
    d.handle_claim(now, op, ClaimOutcome::Won { revision: 7 });
    d.handle_watch(now, WatchEvent::Put(route_kv("g.test", "b", 3, 8, THEIRS)));
    let acts = actions(&mut d);
    assert!(acts.contains(&EdgeAction::Yield {
        name: name("g.test"),
        worker: 0,
        seq: 2,
        primary: true
    }));
    assert_eq!(d.stats().yielded, 2);
}

#[test]
fn a_release_deletes_only_the_revision_it_put() {
    let now = start();
    let (mut d, _) = ready(now, vec![], 5);
    d.handle_claimed(now, &[name("h.test")], 0, 1);
    let (op, _) = claim_op(&ops(&mut d));
    d.handle_claim(now, op, ClaimOutcome::Won { revision: 6 });
    d.handle_released(now, &[name("h.test")], 0, 1);
    let out = ops(&mut d);
    assert!(
        matches!(
            &out[..],
            [StoreOp::Release {
                if_mod_revision: 6,
                ..
            }]
        ),
        "{out:?}"
    );
    // A release by a tunnel that no longer holds the name asks for nothing.
    d.handle_claimed(now, &[name("g.test")], 0, 3);
    let _ = ops(&mut d);
    d.handle_released(now, &[name("g.test")], 0, 2);
    assert_eq!(ops(&mut d), vec![]);
}

#[test]
fn a_claim_made_blind_waits_for_the_snapshot() {
    let now = start();
    let config = Config {
        me: id("a"),
        fleet_addr: "10.0.0.1:4443".parse().unwrap(),
        lease_ttl: TTL,
        retry_after: RETRY,
    };
    let mut d = Directory::new(config, now);
    let first = ops(&mut d);
    d.handle_lease_granted(now, first[0].id(), MINE, TTL);
    let _ = ops(&mut d);
    d.handle_claimed(now, &[name("h.test")], 0, 1);
    assert!(
        !ops(&mut d)
            .iter()
            .any(|o| matches!(o, StoreOp::Claim { .. }))
    );
    d.handle_snapshot(
        now,
        first[1].id(),
        vec![route_kv("h.test", "b", 4, 20, THEIRS)],
        20,
    );
    assert_eq!(claim_op(&ops(&mut d)).1, 20);
}

#[test]
fn a_lost_lease_republishes_over_the_revision_held_not_over_newer_claims() {
    let now = start();
    let (mut d, _) = ready(now, vec![], 5);
    d.handle_claimed(now, &[name("h.test")], 0, 1);
    let (op, _) = claim_op(&ops(&mut d));
    d.handle_claim(now, op, ClaimOutcome::Won { revision: 6 });
    d.handle_lease_lost(now, MINE);
    let out = ops(&mut d);
    assert!(matches!(out[..], [StoreOp::Grant { .. }]), "{out:?}");
    d.handle_lease_granted(now, out[0].id(), LeaseId(3), TTL);
    let out = ops(&mut d);
    assert_eq!(claim_op(&out).1, 6);
    assert!(out.iter().any(|o| matches!(
        o,
        StoreOp::Register {
            lease: LeaseId(3),
            ..
        }
    )));
}

#[test]
fn an_unreachable_store_takes_nothing_from_the_edge_and_is_asked_again_later() {
    let now = start();
    let (mut d, _) = ready(now, vec![route_kv("h.test", "b", 7, 10, THEIRS)], 10);
    let _ = actions(&mut d);
    d.handle_claimed(now, &[name("g.test")], 0, 1);
    let (op, basis) = claim_op(&ops(&mut d));
    d.handle_failed(now, op);
    d.handle_watch_lost(now);
    assert_eq!(ops(&mut d), vec![], "backing off");
    assert_eq!(actions(&mut d), vec![], "soft state");
    let later = now + RETRY;
    assert!(d.poll_timeout().is_some_and(|t| t <= later));
    d.handle_timeout(later);
    let out = ops(&mut d);
    assert_eq!(claim_op(&out).1, basis);
    assert!(out.iter().any(|o| matches!(o, StoreOp::Snapshot { .. })));
    // The resync finds the other edge's route gone: only now is it removed.
    let snap = out
        .iter()
        .find(|o| matches!(o, StoreOp::Snapshot { .. }))
        .unwrap();
    d.handle_snapshot(later, snap.id(), vec![], 12);
    assert_eq!(
        actions(&mut d),
        vec![EdgeAction::RemoveRemote {
            name: name("h.test"),
            edge: id("b"),
            revision: 12
        }]
    );
}

#[test]
fn the_lease_is_kept_alive_and_given_up_when_unrenewed_for_a_ttl() {
    let now = start();
    let (mut d, _) = ready(now, vec![], 5);
    assert_eq!(d.poll_timeout(), Some(now + TTL / 3));
    let sent = now + TTL / 3;
    d.handle_timeout(sent);
    let out = ops(&mut d);
    assert!(
        matches!(out[..], [StoreOp::KeepAlive { lease: MINE, .. }]),
        "{out:?}"
    );
    // A late answer counts from when the keepalive left, as the store's clock does.
    d.handle_lease_renewed(sent + Duration::from_millis(700), out[0].id(), TTL);
    let sent = sent + TTL / 3;
    assert_eq!(d.poll_timeout(), Some(sent));
    d.handle_timeout(sent);
    assert!(matches!(ops(&mut d)[..], [StoreOp::KeepAlive { .. }]));
    // No answer: a TTL after the last renewal left, the lease counts as lost and a new one
    // is asked for.
    let expiry = now + TTL / 3 + TTL;
    assert_eq!(d.poll_timeout(), Some(expiry));
    d.handle_timeout(expiry);
    assert_eq!(d.lease(), None);
    assert!(matches!(ops(&mut d)[..], [StoreOp::Grant { .. }]));
}

#[test]
fn what_does_not_decode_is_a_warning_blaming_the_writer_and_routes_nowhere() {
    let now = start();
    let mut junk = route_kv("h.test", "b", 7, 10, THEIRS);
    junk.value = b"{not json".to_vec();
    let bad_key = KeyValue {
        key: b"/sluice/v1/routes/Upper.test".to_vec(),
        ..route_kv("x.test", "b", 1, 9, THEIRS)
    };
    let unknown = KeyValue {
        key: b"/sluice/v1/later/x".to_vec(),
        ..route_kv("x.test", "b", 1, 8, THEIRS)
    };
    let (mut d, _) = ready(now, vec![junk, bad_key, unknown], 10);
    let warnings: Vec<Warning> = std::iter::from_fn(|| d.poll_warning()).collect();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings.iter().all(|w| w.blame() == Blame::Writer));
    assert_eq!(d.routes().count(), 0);
    assert_eq!(actions(&mut d), vec![]);
    // A watch event from the past is the store's fault.
    d.handle_watch(now, WatchEvent::Put(route_kv("h.test", "b", 7, 3, THEIRS)));
    assert_eq!(d.poll_warning().map(|w| w.blame()), Some(Blame::Store));
}

#[test]
fn a_yielded_alias_is_claimed_again_once_free() {
    let now = start();
    let (mut d, _) = ready(now, vec![], 5);
    d.handle_claimed(now, &[name("h.test"), name("alias.test")], 0, 1);
    let out = ops(&mut d);
    for o in &out {
        if let StoreOp::Claim { op, key, .. } = o {
            let outcome = if *key == Key::Route(name("h.test")).encode() {
                ClaimOutcome::Won { revision: 6 }
            } else {
                ClaimOutcome::Lost {
                    current: Some(route_kv("alias.test", "b", 2, 7, THEIRS)),
                }
            };
            d.handle_claim(now, *op, outcome);
        }
    }
    assert_eq!(
        actions(&mut d),
        vec![EdgeAction::Yield {
            name: name("alias.test"),
            worker: 0,
            seq: 1,
            primary: false
        }]
    );
    d.handle_watch(
        now,
        WatchEvent::Put(route_kv("alias.test", "b", 2, 7, THEIRS)),
    );
    d.handle_watch(
        now,
        WatchEvent::Delete {
            key: Key::Route(name("alias.test")).encode(),
            revision: 8,
        },
    );
    let acts = actions(&mut d);
    assert!(acts.contains(&EdgeAction::Reclaim {
        name: name("alias.test"),
        worker: 0,
        seq: 1
    }));
    assert_eq!(claim_op(&ops(&mut d)).1, 0);
}

#[test]
fn a_replica_of_100k_routes_is_installed_and_followed_name_by_name() {
    const N: u64 = 100_000;
    let now = start();
    let kvs = (0..N)
        .map(|i| route_kv(&format!("h{i}.test"), "b", i, 10 + i, THEIRS))
        .collect();
    let (mut d, _) = ready(now, kvs, 10 + N);
    let installs = actions(&mut d);
    assert_eq!(installs.len() as u64, N);
    assert!(
        installs
            .iter()
            .all(|a| matches!(a, EdgeAction::InstallRemote { .. }))
    );
    // One local claim among them all; then every route is deleted, one event each.
    d.handle_claimed(now, &[name("mine.test")], 0, 1);
    let (op, _) = claim_op(&ops(&mut d));
    d.handle_claim(now, op, ClaimOutcome::Won { revision: 20 + N });
    for i in 0..N {
        d.handle_watch(
            now,
            WatchEvent::Delete {
                key: Key::Route(name(&format!("h{i}.test"))).encode(),
                revision: 30 + N + i,
            },
        );
    }
    assert_eq!(actions(&mut d).len() as u64, N);
    assert_eq!(d.remote_routes().count(), 0);
    assert!(d.is_published());
    assert_eq!(ops(&mut d), vec![]);
}

#[test]
fn a_stopping_edge_revokes_its_lease_and_then_asks_for_nothing() {
    let now = start();
    let (mut d, _) = ready(now, vec![], 5);
    d.handle_claimed(now, &[name("h.test")], 0, 1);
    let (op, _) = claim_op(&ops(&mut d));
    d.handle_claim(now, op, ClaimOutcome::Won { revision: 6 });
    d.handle_shutdown(now);
    let out = ops(&mut d);
    assert!(
        matches!(out[..], [StoreOp::Revoke { lease: MINE, .. }]),
        "{out:?}"
    );
    assert!(d.is_stopped());
    // The tunnels ending afterwards, the watch, time: nothing more goes out.
    d.handle_released(now, &[name("h.test")], 0, 1);
    d.handle_watch(now, WatchEvent::Put(route_kv("g.test", "b", 1, 7, THEIRS)));
    d.handle_timeout(now + TTL);
    assert_eq!(ops(&mut d), vec![]);
    assert_eq!(actions(&mut d), vec![]);
}
