//! Bad input from the edge side: a hand-made edge sends malformed frames, frames for unknown
//! channels, unknown flows, duplicate channels and oversize frames. The connector must close
//! what it must (a channel, or the whole tunnel when its framing is lost) and carry on: it
//! never crashes, and it reconnects when it dropped the tunnel.

mod support;

use rand::RngCore;
use rand::rngs::OsRng;
use std::net::IpAddr;
use std::time::Duration;

use sluice_connector::CredentialsFile;
use sluice_connector::access::parse_network;
use sluice_connector::{AccessList, Connector, ConnectorHandle, CredentialSource, State};
use sluice_proto::crypto::CipherKind;
use sluice_proto::frame::{ChannelId, Flow};
use sluice_proto::token::FernetKey;
use sluice_proto::version::ProtocolVersion;
use sluice_testkit::{EchoServer, RunDir, wait_until};
use support::hostile::{HostileEdge, Peer};
use support::*;

const CALLER: &str = "203.0.113.9";

fn caller() -> IpAddr {
    CALLER.parse().unwrap()
}

fn id() -> ChannelId {
    let mut b = [0; 16];
    OsRng.fill_bytes(&mut b);
    ChannelId(b)
}

async fn setup(
    version: ProtocolVersion,
    cipher: CipherKind,
    access: AccessList,
) -> (HostileEdge, EchoServer, ConnectorHandle) {
    init_logs();
    let key = FernetKey::generate(&mut OsRng);
    let edge = HostileEdge::bind(&key).await;
    let echo = EchoServer::start().unwrap();
    let creds = mint(&key, version, cipher, Duration::from_secs(3600));
    let handle = Connector::builder(
        edge.addr().to_string(),
        CredentialSource::Static(Box::new(creds)),
    )
    .passthrough(echo.addr.to_string())
    .access_list(access)
    .backoff(quick_backoff())
    .build()
    .unwrap();
    (edge, echo, handle)
}

/// Waits until the home side's (one) connection has ended.
async fn home_closed(echo: &EchoServer) {
    let closed = || echo.closed() == 1;
    wait_until(
        "the home connection to close",
        Duration::from_secs(10),
        closed,
    )
    .await
    .unwrap();
}

/// Opens a channel, sends `hello`, expects it echoed back through the home side.
async fn round_trip(peer: &mut Peer) -> ChannelId {
    let ch = id();
    peer.open(ch, caller()).await;
    peer.data(ch, b"hello").await;
    let (h, payload) = peer.recv().await.expect("an answer");
    assert_eq!(
        (h.channel, h.flow, payload.as_slice()),
        (ch, Flow::Data, &b"hello"[..])
    );
    ch
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignores_unknown_channels_and_flows_and_keeps_serving() {
    let (edge, echo, handle) =
        setup(ProtocolVersion::V1, CipherKind::AesCbc, AccessList::open()).await;
    let mut peer = edge.accept().await;
    let stranger = id();
    peer.data(stranger, b"nobody listens").await;
    peer.send(Peer::header(stranger, Flow::Close, 0), &[]).await;
    peer.send(Peer::header(stranger, Flow::Pause, 0), &[]).await;
    peer.send(Peer::header(stranger, Flow::Resume, 0), &[])
        .await;
    peer.send(Peer::header(stranger, Flow::Unknown(0x40), 5), b"extra")
        .await;
    let ch = round_trip(&mut peer).await;
    assert_eq!(echo.accepted(), 1);

    // The edge closes the channel: the home side's connection ends, the tunnel stays.
    peer.send(Peer::header(ch, Flow::Close, 0), &[]).await;
    home_closed(&echo).await;
    round_trip(&mut peer).await;
    assert!(handle.state().is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_channel_id_closes_both() {
    let (edge, echo, handle) =
        setup(ProtocolVersion::V0, CipherKind::AesCbc, AccessList::open()).await;
    let mut peer = edge.accept().await;
    let ch = round_trip(&mut peer).await;
    peer.open(ch, caller()).await;
    let (h, _) = peer.recv().await.expect("a CLOSE");
    assert_eq!((h.channel, h.flow), (ch, Flow::Close));
    home_closed(&echo).await;
    round_trip(&mut peer).await;
    assert!(handle.state().is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_and_unreachable_channels_are_closed_and_the_tunnel_stays() {
    let blocked = AccessList::open().block([parse_network("203.0.113.0/24").unwrap()]);
    let (edge, echo, handle) = setup(ProtocolVersion::V1, CipherKind::AesGcmSiv, blocked).await;
    let mut peer = edge.accept().await;
    let ch = id();
    peer.open(ch, caller()).await;
    peer.data(ch, b"let me in").await;
    let (h, _) = peer.recv().await.expect("a CLOSE");
    assert_eq!((h.channel, h.flow), (ch, Flow::Close));
    assert_eq!(echo.accepted(), 0, "not a byte reached the home side");

    // An allowed caller, but the home server is gone.
    let ok = id();
    let fine: IpAddr = "192.0.2.1".parse().unwrap();
    drop(echo);
    peer.open(ok, fine).await;
    let (h, _) = peer.recv().await.expect("a CLOSE");
    assert_eq!((h.channel, h.flow), (ok, Flow::Close));
    assert!(handle.state().is_connected());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_frame_drops_the_tunnel_and_it_reconnects() {
    let (edge, _echo, handle) =
        setup(ProtocolVersion::V2, CipherKind::AesCbc, AccessList::open()).await;
    let mut peer = edge.accept().await;
    // 100 MiB announced: over the frame cap, the framing cannot be trusted any more.
    peer.send(Peer::header(id(), Flow::Data, 100 << 20), b"xxxx")
        .await;
    assert!(peer.closed().await, "the connector drops the tunnel");
    let state = handle
        .wait_until(Duration::from_secs(10), |s| {
            matches!(s, State::BackingOff { .. })
        })
        .await;
    // It may already be reconnecting; either way it is alive and dials again.
    drop(state);
    let mut again = edge.accept().await;
    again.send(Peer::header(id(), Flow::Ping, 0), &[]).await;
    // A v2 NEW whose encrypted address has an impossible size is as bad.
    again
        .send(Peer::header(id(), Flow::New, 17), &[0; 17])
        .await;
    assert!(again.closed().await);
    let _third = edge.accept().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_frames_drops_the_tunnel_and_it_reconnects() {
    let (edge, _echo, handle) =
        setup(ProtocolVersion::V2, CipherKind::AesGcm, AccessList::open()).await;
    let mut peer = edge.accept().await;
    let mut junk = vec![0; 60 * 3];
    OsRng.fill_bytes(&mut junk);
    peer.send_raw(&junk).await;
    assert!(
        peer.closed().await,
        "a unit that does not authenticate ends the tunnel"
    );
    // A static aes-gcm key cannot be used twice: the connector stops rather than reuse it.
    let end = tokio::time::timeout(Duration::from_secs(20), handle.wait())
        .await
        .unwrap();
    assert!(
        matches!(end, Err(sluice_connector::Error::Credentials(_))),
        "{end:?}"
    );

    let (edge, _echo, _handle) = setup(
        ProtocolVersion::V2,
        CipherKind::AesGcmSiv,
        AccessList::open(),
    )
    .await;
    let mut peer = edge.accept().await;
    peer.send_raw(&junk).await;
    assert!(peer.closed().await);
    let mut again = edge.accept().await;
    // Half a header, then silence: nothing happens until more comes (no crash, no spin).
    again.send_raw(&junk[..20]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    again.send_raw(&junk[20..]).await;
    assert!(again.closed().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_0_edge_with_a_v2_token_is_reported_with_the_fix() {
    // SniTun 0.40.0 ignores the token's version: the handshake passes, then its NEW frames
    // are protocol 0's. Static credentials cannot change, so the connector stops and says why.
    let (edge, echo, handle) =
        setup(ProtocolVersion::V2, CipherKind::AesCbc, AccessList::open()).await;
    let mut peer = edge.accept().await;
    connected(&handle).await;
    peer.open_v0(id(), caller()).await;
    assert!(peer.closed().await, "the connector drops the tunnel");
    let end = tokio::time::timeout(Duration::from_secs(20), handle.wait())
        .await
        .unwrap();
    let Err(sluice_connector::Error::ProtocolMismatch(why)) = end else {
        panic!("{end:?}");
    };
    assert!(why.contains("--protocol-version 0"), "{why}");
    assert!(why.contains("token says protocol 2"), "{why}");
    let State::Stopped(Some(e)) = handle.state() else {
        panic!("{:?}", handle.state());
    };
    assert!(
        e.to_string().contains("--protocol-version 0"),
        "state() names the fix: {e}"
    );
    assert_eq!(echo.accepted(), 0, "no channel was served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_credentials_file_a_protocol_mismatch_backs_off_and_retries() {
    init_logs();
    let key = FernetKey::generate(&mut OsRng);
    let edge = HostileEdge::bind(&key).await;
    let echo = EchoServer::start().unwrap();
    let dir = RunDir::new("sluice-mismatch-").unwrap();
    let file = dir.path().join("creds.json");
    mint(
        &key,
        ProtocolVersion::V2,
        CipherKind::AesCbc,
        Duration::from_secs(3600),
    )
    .save(&file)
    .unwrap();
    let handle = Connector::builder(edge.addr().to_string(), CredentialSource::File(file))
        .passthrough(echo.addr.to_string())
        .backoff(quick_backoff())
        .build()
        .unwrap();
    let mut peer = edge.accept().await;
    connected(&handle).await;
    peer.open_v0(id(), caller()).await;
    // A fixed file could bring a token with the right version: state() shows the mismatch
    // while it waits, then it dials again.
    let state = handle
        .wait_until(Duration::from_secs(10), |s| {
            matches!(
                s,
                State::BackingOff {
                    error: sluice_connector::Error::ProtocolMismatch(_),
                    ..
                }
            )
        })
        .await;
    let state = state.expect("backing off with the mismatch");
    let json = state.to_json();
    assert!(
        json["error"]
            .as_str()
            .is_some_and(|e| e.contains("--protocol-version 0")),
        "{json}"
    );
    let _again = edge.accept().await;
}
