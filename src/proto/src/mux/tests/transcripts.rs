//! Our multiplexer, given what the real SniTun peer sent, answers with exactly the bytes the
//! real SniTun peer answered with, for every recorded release, version and cipher.

use bytes::{Bytes, BytesMut};
use std::time::{Duration, Instant, UNIX_EPOCH};

use crate::handshake::ServerChallenge;
use crate::handshake::{ClientHandshake, read_token};
use crate::mux::{Event, Multiplexer, MuxConfig, Recv, Transmit};
use crate::random::VectorPattern;
use crate::test_vectors::{self, Vector};
use crate::token::FernetKey;

fn drain_output<R: crate::Random>(mux: &mut Multiplexer<R>, now: Instant) -> Vec<u8> {
    let mut tx = Transmit::new();
    let mut out = Vec::new();
    while mux.wants_output() {
        mux.poll_transmit(&mut tx, usize::MAX, now).unwrap();
        for s in tx.take_segments() {
            out.extend_from_slice(&s);
        }
    }
    out
}

fn split(v: &Vector) -> (Vec<u8>, Vec<u8>, usize) {
    let unit = 32 + v.cipher().overhead();
    (
        hex::decode(&v.c2s).unwrap(),
        hex::decode(&v.s2c).unwrap(),
        unit,
    )
}

#[test]
fn server_side_reproduces_every_recorded_transcript() {
    let now = Instant::now();
    for v in test_vectors::all() {
        let (c2s, s2c, unit) = split(&v);
        let keys = [FernetKey::parse(&v.fernet_key).unwrap()];
        let wall = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let tok = v.token.len();
        let claims = read_token(&c2s[..tok], &keys, wall)
            .unwrap()
            .complete()
            .unwrap();
        let (challenge, _) = ServerChallenge::new(&claims, &mut VectorPattern).unwrap();
        let session = challenge.verify(&c2s[tok..tok + unit]).unwrap();
        let mut mux = Multiplexer::new(session, MuxConfig::server(), VectorPattern, now);
        let mut s2c_rest = &s2c[unit..];
        let mut c2s_rest = BytesMut::from(&c2s[tok + unit..]);

        // The client's PING gets our PONG.
        let mut ping = c2s_rest.split_to(unit);
        mux.handle_input(&mut ping, now).unwrap();
        assert!(ping.is_empty());
        let pong = drain_output(&mut mux, now);
        assert_eq!(
            hex::encode(&pong),
            hex::encode(&s2c_rest[..unit]),
            "{} pong",
            v.name
        );
        s2c_rest = &s2c_rest[unit..];

        // A browser connects: NEW with its address, then its hello as DATA.
        let hello = hex::decode(&v.client_hello).unwrap();
        let ch = mux.open_channel("127.0.0.1".parse().unwrap(), now).unwrap();
        mux.send(ch, Bytes::from(hello), now).unwrap();
        let out = drain_output(&mut mux, now);
        assert_eq!(
            hex::encode(&out),
            hex::encode(s2c_rest),
            "{} NEW + DATA",
            v.name
        );

        // The endpoint's reply, then the client's CLOSE; we do not echo the CLOSE.
        mux.handle_input(&mut c2s_rest, now).unwrap();
        assert!(c2s_rest.is_empty());
        let events: Vec<Event> = std::iter::from_fn(|| mux.poll_event()).collect();
        assert!(
            events.contains(&Event::Readable { channel: ch }),
            "{}",
            v.name
        );
        assert_eq!(
            mux.recv(ch),
            Recv::Data(Bytes::from(v.public_reply.clone()))
        );
        assert_eq!(mux.recv(ch), Recv::Closed);
        assert!(
            drain_output(&mut mux, now).is_empty(),
            "{}: CLOSE must not be echoed",
            v.name
        );
        assert_eq!(mux.channel_count(), 0);
    }
}

#[test]
fn client_side_reproduces_every_recorded_transcript() {
    let now = Instant::now();
    for v in test_vectors::all() {
        let (c2s, s2c, unit) = split(&v);
        let tok = v.token.len();
        let client = ClientHandshake::new(v.cipher(), v.version(), &v.key(), &v.iv());
        let (session, _) = client.answer(&s2c[..unit], &mut VectorPattern).unwrap();
        let config = MuxConfig {
            ping_interval: Some(Duration::from_secs(1)),
            ..MuxConfig::client()
        };
        let mut mux = Multiplexer::new(session, config, VectorPattern, now);
        let mut c2s_rest = &c2s[tok + unit..];

        // Our keepalive ping.
        let later = now + Duration::from_secs(1);
        assert_eq!(mux.poll_timeout(), Some(later));
        mux.handle_timeout(later).unwrap();
        let ping = drain_output(&mut mux, later);
        assert_eq!(
            hex::encode(&ping),
            hex::encode(&c2s_rest[..unit]),
            "{} ping",
            v.name
        );
        c2s_rest = &c2s_rest[unit..];

        // The server's pong, NEW and the hello, fed one byte at a time.
        let mut inbox = BytesMut::new();
        for &b in &s2c[unit..] {
            inbox.extend_from_slice(&[b]);
            mux.handle_input(&mut inbox, later).unwrap();
        }
        assert!(inbox.is_empty());
        let Some(Event::Opened { channel, caller }) = mux.poll_event() else {
            panic!("{}: no channel opened", v.name);
        };
        assert_eq!(caller, Some("127.0.0.1".parse().unwrap()), "{}", v.name);
        let mut hello = Vec::new();
        while let Recv::Data(b) = mux.recv(channel) {
            mux.consumed(channel, b.len());
            hello.extend_from_slice(&b);
        }
        assert_eq!(hex::encode(hello), v.client_hello, "{}", v.name);

        // The endpoint answers and hangs up.
        mux.send(channel, Bytes::from(v.public_reply.clone()), later)
            .unwrap();
        mux.close(channel);
        let out = drain_output(&mut mux, later);
        assert_eq!(
            hex::encode(out),
            hex::encode(c2s_rest),
            "{} DATA + CLOSE",
            v.name
        );
        assert_eq!(mux.channel_count(), 0);
        assert!(mux.poll_timeout().is_some(), "keepalive goes on");
    }
}
