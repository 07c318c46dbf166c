//! Two workers: connections for a tunnel on the other core are handed over and work; a
//! reconnecting tunnel that lands on the other core replaces its predecessor there.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use sluice_edge::EdgeHandle;
use sluice_edge::metrics::TunnelEnd;
use sluice_proto::crypto::CipherKind;
use sluice_proto::version::ProtocolVersion;
use support::peer::Creds;
use support::{drivers, echo_round_trip, echo_server, edge, wait_for};

const HOST: &str = "home.example.test";

/// Which worker holds the (single) connected tunnel.
fn tunnel_worker(edge: &EdgeHandle) -> Option<usize> {
    wait_for(Duration::from_secs(2), || {
        let per: Vec<i64> = edge
            .metrics()
            .workers()
            .iter()
            .map(|w| w.tunnels.load(Ordering::Relaxed))
            .collect();
        (per.iter().sum::<i64>() == 1)
            .then(|| per.iter().position(|&n| n == 1))
            .flatten()
    })
}

#[test]
fn browsers_on_the_other_core_are_handed_over() {
    for io in drivers() {
        let (edge, key) = edge(io, 2, |_| {});
        let addr = edge.listen_addrs()[0];
        let _peer = support::attach(
            &edge,
            addr,
            &Creds::new(&key, HOST, &[], ProtocolVersion::V2, CipherKind::AesGcm),
            echo_server(),
        )
        .unwrap();
        // The kernel spreads connections over both workers' sockets: 40 connections all on one
        // worker would happen once in 2^39 runs.
        for i in 0..40 {
            echo_round_trip(addr, HOST).unwrap_or_else(|e| panic!("{io:?} connection {i}: {e}"));
        }
        let out = edge
            .metrics()
            .total(|w| w.handovers_out.load(Ordering::Relaxed));
        let inn = edge
            .metrics()
            .total(|w| w.handovers_in.load(Ordering::Relaxed));
        assert!(out > 0 && out < 40, "{io:?}: {out} handovers");
        assert_eq!(out, inn);
        let owner = tunnel_worker(&edge).unwrap();
        assert_eq!(
            edge.metrics()
                .worker(owner)
                .handovers_out
                .load(Ordering::Relaxed),
            0,
            "the owner serves its own"
        );
    }
}

#[test]
fn a_reconnect_on_the_other_core_replaces_its_predecessor() {
    let (edge, key) = edge(sluice_edge::IoDriver::Auto, 2, |_| {});
    let addr = edge.listen_addrs()[0];
    let mut current = support::attach(
        &edge,
        addr,
        &Creds::new(
            &key,
            HOST,
            &["alias.example.test"],
            ProtocolVersion::V1,
            CipherKind::AesCbc,
        ),
        echo_server(),
    )
    .unwrap();
    let first_worker = tunnel_worker(&edge).unwrap();
    let mut moved = false;
    for _ in 0..30 {
        let next = support::attach(
            &edge,
            addr,
            &Creds::new(
                &key,
                HOST,
                &["alias.example.test"],
                ProtocolVersion::V1,
                CipherKind::AesCbc,
            ),
            echo_server(),
        )
        .unwrap();
        assert!(
            current.wait_ended(Duration::from_secs(3)).is_some(),
            "the predecessor is closed"
        );
        current = next;
        let worker = tunnel_worker(&edge).expect("exactly one tunnel remains");
        if worker != first_worker {
            moved = true;
            break;
        }
    }
    assert!(moved, "a reconnect landed on the other worker");
    assert!(edge.metrics().total(|w| w.tunnel_ends(TunnelEnd::Replaced)) >= 1);
    // Browsers on either worker reach the new tunnel, by name and by alias.
    let before = current.log.lock().unwrap().opened;
    for _ in 0..10 {
        echo_round_trip(addr, HOST).unwrap();
        echo_round_trip(addr, "alias.example.test").unwrap();
    }
    assert_eq!(current.log.lock().unwrap().opened, before + 20);
}
