//! Shared fixtures for the criterion benches in `benches/benches/`.

use rand::SeedableRng;
use rand::rngs::StdRng;
use std::time::Instant;

use sluice_proto::crypto::CipherKind;
use sluice_proto::handshake::{ClientHandshake, ServerChallenge};
use sluice_proto::mux::{Multiplexer, MuxConfig};
use sluice_proto::token::TokenClaims;
use sluice_proto::version::ProtocolVersion;

/// Claims for a tunnel with the given cipher and version.
pub fn claims(cipher: CipherKind, version: ProtocolVersion) -> TokenClaims {
    TokenClaims {
        valid: 4e9,
        hostname: "home.example.test".parse().unwrap(),
        aliases: vec![],
        aes_key: [0x20; 32],
        aes_iv: [0x40; 16],
        protocol_version: version,
        cipher,
    }
}

/// A server and a client multiplexer after a real handshake.
pub fn pair(
    cipher: CipherKind,
    version: ProtocolVersion,
) -> (Multiplexer<StdRng>, Multiplexer<StdRng>) {
    let c = claims(cipher, version);
    let mut rng = StdRng::seed_from_u64(7);
    let (challenge, wire) = ServerChallenge::new(&c, &mut rng).unwrap();
    let client = ClientHandshake::new(cipher, version, &c.aes_key, &c.aes_iv);
    let (client, answer) = client.answer(&wire, &mut rng).unwrap();
    let server = challenge.verify(&answer).unwrap();
    let now = Instant::now();
    let unlimited = |base: MuxConfig| MuxConfig {
        channel_incoming_max: 1 << 30,
        tunnel_incoming_max: 1 << 30,
        incoming_high: 1 << 29,
        incoming_low: 1 << 28,
        outgoing_high: 1 << 30,
        outgoing_low: 1 << 29,
        ..base
    };
    (
        Multiplexer::new(
            server,
            unlimited(MuxConfig::server()),
            StdRng::seed_from_u64(1),
            now,
        ),
        Multiplexer::new(
            client,
            unlimited(MuxConfig::client()),
            StdRng::seed_from_u64(2),
            now,
        ),
    )
}
