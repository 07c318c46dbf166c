//! A seeded random workload over a pair: channels open and close at random, data of random
//! sizes flows both ways, readers stall and drain at random, time passes. Every byte must arrive in order
//! (a channel closed for falling behind its cap delivers a prefix, and nothing after it), no
//! queue passes its cap, and the accounting must balance. A failing seed replays with
//! `SLUICE_SIM_SEED=<seed>`.

use bytes::Bytes;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::time::Duration;

use super::harness::{ALL, Pair};
use crate::mux::{ChannelHandle, CloseCause, Multiplexer, MuxConfig};

/// What a channel should have carried, by the sending side's handle.
#[derive(Default)]
struct Expect {
    down: Vec<u8>,
    up: Vec<u8>,
}

fn check_accounting<R: crate::Random>(mux: &Multiplexer<R>) {
    let pending: usize = mux.channels.iter().map(|(_, c)| c.incoming_pending).sum();
    assert_eq!(pending, mux.incoming_total, "incoming accounting");
    // Protocol 0 stops reading at a cap, so the frame that crossed it is held whole.
    let slack = if mux.version.has_flow_control() {
        0
    } else {
        crate::limits::MAX_SEND_FRAME_PAYLOAD
    };
    assert!(
        mux.incoming_total <= mux.config.tunnel_incoming_max + slack,
        "the tunnel's cap holds"
    );
    for (_, c) in mux.channels.iter() {
        assert!(
            c.incoming_pending <= mux.config.channel_incoming_max + slack,
            "each channel's cap holds"
        );
    }
    for (_, c) in mux.channels.iter() {
        let queued: usize = c
            .outgoing
            .iter()
            .map(|i| match i {
                super::super::channel::OutItem::Data(b) => b.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(queued, c.outgoing_bytes, "outgoing accounting");
    }
}

/// Runs one seed; returns (PAUSEs sent, channels overrun) to show the workload hit flow
/// control.
fn run(seed: u64) -> (u64, u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (cipher, version) = ALL[rng.gen_range(0..ALL.len())];
    let small = |base: MuxConfig| MuxConfig {
        incoming_high: 32 * 1024,
        incoming_low: 8 * 1024,
        channel_incoming_max: 128 * 1024,
        tunnel_incoming_max: 512 * 1024,
        outgoing_high: 32 * 1024,
        outgoing_low: 8 * 1024,
        max_channels: 16,
        // Time moves in the workload (a protocol-0 stall's grace passes), and only the caps
        // may close a channel.
        stall_max: Duration::from_millis(100),
        channel_idle_timeout: None,
        idle_timeout: None,
        ..base
    };
    let mut p = Pair::with_config(
        cipher,
        version,
        small(MuxConfig::server()),
        small(MuxConfig::client()),
    );
    p.server.auto_consume = false;
    p.client.auto_consume = false;
    // server handle -> (client handle, expectations)
    let mut live: Vec<(ChannelHandle, ChannelHandle)> = Vec::new();
    let mut expect: HashMap<ChannelHandle, Expect> = HashMap::new();
    let mut closed_pairs: Vec<(ChannelHandle, ChannelHandle)> = Vec::new();
    let mut overrun_pairs: Vec<(ChannelHandle, ChannelHandle)> = Vec::new();
    let mut pending = std::collections::VecDeque::new();
    let mut matched = 0;
    for step in 0..400 {
        match rng.gen_range(0..10) {
            0 if live.len() + pending.len() < 8 => {
                // A stalled client may see the NEW only later: pair NEWs with Opened in order.
                let s = p
                    .server
                    .mux
                    .open_channel("192.0.2.1".parse().unwrap(), p.now)
                    .unwrap();
                pending.push_back(s);
                expect.insert(s, Expect::default());
            }
            1..=3 if !live.is_empty() => {
                let (s, c) = live[rng.gen_range(0..live.len())];
                let n = rng.gen_range(1..100_000);
                let data: Vec<u8> = (0..n).map(|_| rng.r#gen()).collect();
                if rng.gen_bool(0.5) {
                    if p.server.mux.can_send(s) {
                        p.server
                            .mux
                            .send(s, Bytes::from(data.clone()), p.now)
                            .unwrap();
                        expect.get_mut(&s).unwrap().down.extend_from_slice(&data);
                    }
                } else if p.client.mux.can_send(c) {
                    p.client
                        .mux
                        .send(c, Bytes::from(data.clone()), p.now)
                        .unwrap();
                    expect.get_mut(&s).unwrap().up.extend_from_slice(&data);
                }
            }
            4..=6 => {
                for &(s, c) in &live {
                    let limit = rng.gen_range(0..64 * 1024);
                    p.server.drain_up_to(s, limit);
                    let limit = rng.gen_range(0..64 * 1024);
                    p.client.drain_up_to(c, limit);
                }
                p.server.process_events(p.now);
                p.client.process_events(p.now);
            }
            7 if !live.is_empty() => {
                // Close only drained channels, so that the byte check below is exact.
                let i = rng.gen_range(0..live.len());
                let (s, c) = live[i];
                let e = &expect[&s];
                p.server.drain(s);
                p.client.drain(c);
                p.drive();
                p.server.drain(s);
                p.client.drain(c);
                let done = p.client.received.get(&c).map_or(0, Vec::len) == e.down.len()
                    && p.server.received.get(&s).map_or(0, Vec::len) == e.up.len();
                if done {
                    if rng.gen_bool(0.5) {
                        p.server.mux.close(s);
                    } else {
                        p.client.mux.close(c);
                    }
                    // Both shells see the end and drain to it, as a real shell does.
                    p.drive();
                    p.server.drain(s);
                    p.client.drain(c);
                    live.swap_remove(i);
                    closed_pairs.push((s, c));
                }
            }
            8 => p.advance(Duration::from_millis(150)),
            _ => {}
        }
        p.drive();
        while matched < p.client.opened.len() {
            let s = pending.pop_front().expect("an Opened for every NEW");
            live.push((s, p.client.opened[matched].0));
            matched += 1;
        }
        // A channel whose reader fell behind a cap is closed by the side that held its bytes.
        let overran = |&(s, c): &(ChannelHandle, ChannelHandle)| {
            p.server.closed.contains(&(s, CloseCause::Overrun))
                || p.client.closed.contains(&(c, CloseCause::Overrun))
        };
        overrun_pairs.extend(live.iter().filter(|pair| overran(pair)));
        live.retain(|pair| !overran(pair));
        check_accounting(&p.server.mux);
        check_accounting(&p.client.mux);
        assert!(
            p.server.error.is_none() && p.client.error.is_none(),
            "seed {seed} step {step}"
        );
    }
    // Drain everything and compare.
    for _ in 0..1000 {
        for &(s, c) in live.iter().chain(&closed_pairs).chain(&overrun_pairs) {
            p.server.drain(s);
            p.client.drain(c);
        }
        p.server.process_events(p.now);
        p.client.process_events(p.now);
        p.drive();
        if !p.server.mux.wants_output()
            && !p.client.mux.wants_output()
            && p.server.inbox.is_empty()
            && p.client.inbox.is_empty()
        {
            break;
        }
    }
    for (s, c) in live.iter().chain(&closed_pairs) {
        let e = &expect[s];
        assert!(
            p.client
                .received
                .get(c)
                .map_or(e.down.is_empty(), |r| *r == e.down),
            "seed {seed}: down bytes"
        );
        assert!(
            p.server
                .received
                .get(s)
                .map_or(e.up.is_empty(), |r| *r == e.up),
            "seed {seed}: up bytes"
        );
    }
    for (s, c) in &overrun_pairs {
        let e = &expect[s];
        let down = p.client.received.get(c).map_or(&[][..], Vec::as_slice);
        let up = p.server.received.get(s).map_or(&[][..], Vec::as_slice);
        assert!(
            e.down.starts_with(down) && e.up.starts_with(up),
            "seed {seed}: an overrun channel delivers a prefix"
        );
    }
    for (s, c) in closed_pairs.into_iter().chain(overrun_pairs) {
        assert!(
            p.server.mux.get(s).is_none() && p.client.mux.get(c).is_none(),
            "seed {seed}: closed channels are gone"
        );
    }
    let (ss, cs) = (p.server.mux.stats(), p.client.mux.stats());
    (
        ss.pauses_sent + cs.pauses_sent,
        ss.channels_overrun + cs.channels_overrun,
    )
}

#[test]
fn random_workloads_deliver_every_byte() {
    if let Ok(seed) = std::env::var("SLUICE_SIM_SEED") {
        run(seed.parse().expect("SLUICE_SIM_SEED is a number"));
        return;
    }
    let (mut pauses, mut overruns) = (0, 0);
    for seed in 0..24 {
        let (p, o) = run(seed);
        pauses += p;
        overruns += o;
    }
    assert!(
        pauses > 0 && overruns > 0,
        "the workload must exercise flow control ({pauses}, {overruns})"
    );
}
