//! A hand-made edge that speaks raw frames: it can send whatever a broken or hostile edge
//! would. Built on sluice-proto's server handshake and its cipher and header codec only.

use rand::rngs::OsRng;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use sluice_proto::crypto::TunnelCipher;
use sluice_proto::frame::{self, ChannelId, Flow, HEADER_LEN, Header};
use sluice_proto::handshake::{ServerChallenge, read_token};
use sluice_proto::peek::Peek;
use sluice_proto::token::FernetKey;
use sluice_proto::version::ProtocolVersion;

const WAIT: Duration = Duration::from_secs(20);

pub struct HostileEdge {
    listener: TcpListener,
    key: FernetKey,
}

/// One accepted, authenticated tunnel.
pub struct Peer {
    pub stream: TcpStream,
    cipher: TunnelCipher,
    pub version: ProtocolVersion,
}

impl HostileEdge {
    pub async fn bind(key: &FernetKey) -> Self {
        Self {
            listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            key: key.clone(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap()
    }

    /// Accepts the next tunnel and runs the server side of the handshake.
    pub async fn accept(&self) -> Peer {
        tokio::time::timeout(WAIT, self.accept_inner())
            .await
            .expect("a connector dials in within 20 s")
    }

    async fn accept_inner(&self) -> Peer {
        let (mut stream, _) = self.listener.accept().await.unwrap();
        let mut buf = Vec::new();
        let claims = loop {
            let mut chunk = [0u8; 1024];
            let n = stream.read(&mut chunk).await.unwrap();
            assert!(n > 0, "connector closed before its token was whole");
            buf.extend_from_slice(&chunk[..n]);
            match read_token(&buf, std::slice::from_ref(&self.key), SystemTime::now()).unwrap() {
                Peek::Complete(c) => break c,
                Peek::NeedMore => continue,
                Peek::NotThisProtocol => panic!("not a token"),
            }
        };
        let (challenge, wire) = ServerChallenge::new(&claims, &mut OsRng).unwrap();
        stream.write_all(&wire).await.unwrap();
        let mut answer = vec![0; challenge.answer_len()];
        stream.read_exact(&mut answer).await.unwrap();
        let session = challenge.verify(&answer).unwrap();
        Peer {
            stream,
            cipher: session.cipher,
            version: session.version,
        }
    }
}

impl Peer {
    /// Sends a header (sealed) and a raw payload after it.
    pub async fn send(&mut self, header: Header, payload: &[u8]) {
        let mut unit = vec![0; HEADER_LEN + self.cipher.overhead()];
        self.cipher
            .seal(&header.encode(), &mut unit, &mut OsRng)
            .unwrap();
        unit.extend_from_slice(payload);
        // A write may fail once the connector has dropped us; tests look at what follows.
        let _ = self.stream.write_all(&unit).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes).await;
    }

    pub fn header(channel: ChannelId, flow: Flow, size: u32) -> Header {
        Header {
            channel,
            flow,
            size,
            extra: frame::extra_with(&[], &mut OsRng),
        }
    }

    /// Opens a channel for `caller` (protocol 0/1: the address rides in EXTRA).
    pub async fn open(&mut self, id: ChannelId, caller: IpAddr) {
        assert!(!self.version.has_new_payload());
        self.open_v0(id, caller).await;
    }

    /// Opens a channel in protocol 0's format whatever the token says, as SniTun 0.40.0 does.
    pub async fn open_v0(&mut self, id: ChannelId, caller: IpAddr) {
        let header = Header {
            channel: id,
            flow: Flow::New,
            size: 0,
            extra: frame::new_extra_v0(caller, &mut OsRng),
        };
        self.send(header, &[]).await;
    }

    pub async fn data(&mut self, id: ChannelId, payload: &[u8]) {
        let h = Self::header(id, Flow::Data, payload.len() as u32);
        self.send(h, payload).await;
    }

    /// The next frame from the connector other than a PING (answered), or `None` at EOF.
    pub async fn recv(&mut self) -> Option<(Header, Vec<u8>)> {
        tokio::time::timeout(WAIT, async {
            loop {
                let mut unit = vec![0; HEADER_LEN + self.cipher.overhead()];
                self.stream.read_exact(&mut unit).await.ok()?;
                let plain: [u8; HEADER_LEN] =
                    self.cipher.open(&mut unit).unwrap().try_into().unwrap();
                let header = Header::decode(&plain);
                let mut payload = vec![0; header.size as usize];
                self.stream.read_exact(&mut payload).await.ok()?;
                if header.flow == Flow::Ping {
                    let pong = Header {
                        extra: frame::extra_with(frame::PONG_MARK, &mut OsRng),
                        ..header
                    };
                    self.send(pong, &[]).await;
                    continue;
                }
                return Some((header, payload));
            }
        })
        .await
        .expect("a frame or EOF within 20 s")
    }

    /// Waits for the connector to drop the connection.
    pub async fn closed(&mut self) -> bool {
        let wait = async {
            let mut sink = [0u8; 4096];
            loop {
                match self.stream.read(&mut sink).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => {}
                }
            }
        };
        tokio::time::timeout(WAIT, wait).await.unwrap_or(false)
    }
}
