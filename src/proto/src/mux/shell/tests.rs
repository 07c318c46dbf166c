//! The shell pieces against real multiplexers joined in memory.

use bytes::{Bytes, BytesMut};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::cell::{Cell, RefCell};
use std::io::IoSlice;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::*;
use crate::crypto::CipherKind;
use crate::mux::tests::harness::{Mux, sessions};
use crate::mux::{CloseCause, MuxConfig, Transmit};
use crate::version::ProtocolVersion;

const CALLER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 7));

fn small(config: MuxConfig) -> MuxConfig {
    MuxConfig {
        incoming_high: 64 * 1024,
        incoming_low: 16 * 1024,
        channel_incoming_max: 256 * 1024,
        tunnel_incoming_max: 1024 * 1024,
        ..config
    }
}

/// A server and a client multiplexer, and what each wrote that the other has not read.
struct Link {
    server: Mux,
    client: Mux,
    now: Instant,
}

impl Link {
    fn new(version: ProtocolVersion) -> Self {
        let (s, c) = sessions(CipherKind::AesGcm, version);
        let now = Instant::now();
        Self {
            server: Mux::new(s, small(MuxConfig::server()), StdRng::seed_from_u64(1), now),
            client: Mux::new(c, small(MuxConfig::client()), StdRng::seed_from_u64(2), now),
            now,
        }
    }

    /// Delivers everything the server wants to send to the client.
    fn server_to_client(&mut self) {
        let mut bytes = wire(&mut self.server, self.now);
        self.client.handle_input(&mut bytes, self.now).unwrap();
    }

    /// Delivers everything the client wants to send to the server.
    fn client_to_server(&mut self) {
        let mut bytes = wire(&mut self.client, self.now);
        self.server.handle_input(&mut bytes, self.now).unwrap();
    }
}

/// Everything `from` wants to send, as one byte string.
fn wire(from: &mut Mux, now: Instant) -> BytesMut {
    let mut tx = Transmit::new();
    let mut out = BytesMut::new();
    while from.wants_output() {
        from.poll_transmit(&mut tx, 64 * 1024, now).unwrap();
        for s in tx.take_segments() {
            out.extend_from_slice(&s);
        }
    }
    out
}

#[derive(Debug, Default)]
struct Wakes {
    readable: Cell<u32>,
    writable: Cell<u32>,
    closed: RefCell<Vec<CloseCause>>,
    ended: Cell<bool>,
}

impl Waiters for Wakes {
    fn readable(&self) {
        self.readable.set(self.readable.get() + 1);
    }
    fn writable(&self) {
        self.writable.set(self.writable.get() + 1);
    }
    fn closed(&self, cause: CloseCause) {
        self.closed.borrow_mut().push(cause);
    }
    fn tunnel_ended(&self) {
        self.ended.set(true);
    }
}

#[test]
fn a_stale_handle_finds_nothing_even_when_its_index_is_reused() {
    let mut l = Link::new(ProtocolVersion::V2);
    let a = l.server.open_channel(CALLER, l.now).unwrap();
    let mut slots = Slots::new();
    slots.insert(a, "a");
    l.server.close(a);
    // The channel is forgotten once its CLOSE is on the wire.
    wire(&mut l.server, l.now);
    assert_eq!(slots.remove(a), Some("a"));
    let b = l.server.open_channel(CALLER, l.now).unwrap();
    assert_eq!(b.index(), a.index(), "the test needs the index reused");
    slots.insert(b, "b");
    assert_eq!(slots.get(a), None);
    assert_eq!(slots.remove(a), None);
    assert_eq!(slots.get(b), Some(&"b"));
    assert_eq!(slots.len(), 1);
    assert_eq!(slots.handles(), vec![b]);
}

#[test]
fn dispatch_stores_a_new_channel_before_the_events_that_follow_it() {
    let mut l = Link::new(ProtocolVersion::V2);
    let h = l.server.open_channel(CALLER, l.now).unwrap();
    l.server
        .send(h, Bytes::from_static(b"hello"), l.now)
        .unwrap();
    l.server_to_client();
    let mut slots: Slots<std::rc::Rc<Wakes>> = Slots::new();
    let mut callers = Vec::new();
    dispatch(&mut l.client, &mut slots, |_, caller| {
        callers.push(caller);
        Some(Default::default())
    });
    assert_eq!(callers, vec![Some(CALLER)]);
    let (ch, w) = slots.iter().next().unwrap();
    assert!(w.readable.get() >= 1, "the NEW's data woke the fresh slot");
    let batch = recv_batch(&mut l.client, ch, 1024, 8);
    assert_eq!(&batch.segments.concat()[..], b"hello");
    assert!(!batch.closed);
}

#[test]
fn a_refused_new_channel_is_closed_and_the_peer_hears_of_it() {
    let mut l = Link::new(ProtocolVersion::V2);
    let h = l.server.open_channel(CALLER, l.now).unwrap();
    l.server_to_client();
    let mut slots: Slots<Wakes> = Slots::new();
    dispatch(&mut l.client, &mut slots, |_, _| None);
    assert!(slots.is_empty());
    l.client_to_server();
    let mut server_slots = Slots::new();
    server_slots.insert(h, Wakes::default());
    dispatch(&mut l.server, &mut server_slots, |_, _| None);
    assert_eq!(
        *server_slots.get(h).unwrap().closed.borrow(),
        vec![CloseCause::PeerClosed]
    );
}

#[test]
fn an_overrun_says_the_undelivered_bytes_are_gone_and_a_peer_close_does_not() {
    assert!(CloseCause::Overrun.discards_undelivered());
    assert!(CloseCause::Idle.discards_undelivered());
    assert!(!CloseCause::PeerClosed.discards_undelivered());
}

#[test]
fn end_all_reaches_every_slot() {
    let mut l = Link::new(ProtocolVersion::V1);
    let mut slots = Slots::new();
    for _ in 0..3 {
        let h = l.server.open_channel(CALLER, l.now).unwrap();
        slots.insert(h, Wakes::default());
    }
    end_all(&slots);
    assert!(slots.iter().all(|(_, w)| w.ended.get()));
}

#[test]
fn recv_batch_stops_at_its_limits_and_reports_the_end_last() {
    let mut l = Link::new(ProtocolVersion::V2);
    let h = l.server.open_channel(CALLER, l.now).unwrap();
    l.server_to_client();
    let mut slots: Slots<Wakes> = Slots::new();
    dispatch(&mut l.client, &mut slots, |_, _| Some(Wakes::default()));
    let ch = slots.handles()[0];
    for i in 0..10u8 {
        l.client
            .send(ch, Bytes::from(vec![i; 1000]), l.now)
            .unwrap();
    }
    l.client.close(ch);
    l.client_to_server();
    let first = recv_batch(&mut l.server, h, 2500, 8);
    assert_eq!(
        (first.segments.len(), first.bytes, first.closed),
        (3, 3000, false)
    );
    let second = recv_batch(&mut l.server, h, usize::MAX, 4);
    assert_eq!((second.segments.len(), second.closed), (4, false));
    let last = recv_batch(&mut l.server, h, usize::MAX, 64);
    assert_eq!((last.segments.len(), last.closed), (3, true));
    let all: Vec<u8> = [first, second, last]
        .iter()
        .flat_map(|b| b.segments.concat())
        .collect();
    let want: Vec<u8> = (0..10u8).flat_map(|i| vec![i; 1000]).collect();
    assert_eq!(all, want);
}

#[test]
fn the_write_cursor_resumes_mid_segment_after_partial_writes() {
    let segs = vec![
        Bytes::from_static(b"abc"),
        Bytes::new(),
        Bytes::from_static(b"defgh"),
        Bytes::from_static(b"ij"),
    ];
    let mut c = WriteCursor::new(segs);
    assert_eq!(c.len(), 10);
    let mut written = Vec::new();
    // A writer that takes 4 bytes at most per vectored write, across segment boundaries.
    for _ in 0..10 {
        if c.is_empty() {
            break;
        }
        let mut io = [IoSlice::new(&[]); 8];
        let n = c.slices(&mut io);
        let mut budget = 4;
        for s in &io[..n] {
            let take = s.len().min(budget);
            written.extend_from_slice(&s[..take]);
            budget -= take;
        }
        c.advance(4 - budget);
    }
    assert!(c.is_empty());
    assert_eq!(written, b"abcdefghij");
    c.advance(5);
    assert_eq!(c.len(), 0, "advancing past the end is harmless");
}

/// A protocol-0 tunnel past a channel's cap stops taking input with bytes left in the
/// buffer; after the sink drains, dispatch says so and the inbox feeds what waited. Nothing is
/// lost, and the socket is never read while bytes wait.
#[test]
fn the_inbox_holds_what_a_stall_left_and_feeds_it_once_the_stall_ends() {
    let mut l = Link::new(ProtocolVersion::V0);
    let h = l.server.open_channel(CALLER, l.now).unwrap();
    l.server_to_client();
    let mut client_slots: Slots<Wakes> = Slots::new();
    dispatch(&mut l.client, &mut client_slots, |_, _| {
        Some(Wakes::default())
    });
    let ch = client_slots.handles()[0];
    let total = 600 * 1024;
    let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    for chunk in data.chunks(16 * 1024) {
        l.client
            .send(ch, Bytes::copy_from_slice(chunk), l.now)
            .unwrap();
    }
    let mut inbox = Inbox::new();
    inbox
        .buf_mut()
        .extend_from_slice(&wire(&mut l.client, l.now));
    inbox.feed(&mut l.server, l.now).unwrap();
    assert!(
        inbox.held(),
        "past the 256 KiB cap the rest waits in the buffer"
    );
    assert!(!inbox.should_read(&l.server));
    let mut slots = Slots::new();
    slots.insert(h, Wakes::default());
    let mut got = Vec::new();
    for _ in 0..100 {
        let batch = recv_batch(&mut l.server, h, 64 * 1024, 64);
        got.extend(batch.segments.concat());
        l.server.consumed(h, batch.bytes);
        if dispatch(&mut l.server, &mut slots, |_, _| None) {
            inbox.feed(&mut l.server, l.now).unwrap();
        }
        if got.len() == total {
            break;
        }
    }
    assert_eq!(got.len(), total);
    assert!(got == data, "every byte arrived, in order");
    assert!(inbox.is_empty() && !inbox.held());
}

#[test]
fn an_inbox_sheds_its_memory_only_when_it_holds_nothing() {
    let mut inbox = Inbox::new();
    assert!(!inbox.shed(), "nothing to give back");
    inbox.buf_mut().reserve(64 * 1024);
    inbox.buf_mut().extend_from_slice(b"part of a frame");
    assert!(!inbox.shed(), "a partial frame stays");
    assert_eq!(inbox.len(), 15);
    inbox.buf_mut().clear();
    assert!(inbox.shed());
    assert_eq!(inbox.capacity(), 0);
}

/// A local end that takes at most `per_turn` bytes a turn, echoes them upper-cased, and
/// fails if told to.
#[derive(Debug, Default)]
struct Echo {
    per_turn: usize,
    echo: Vec<u8>,
    got: usize,
    fail_after: Option<usize>,
    finished: bool,
}

impl Endpoint for Echo {
    fn deliver(&mut self, data: &[u8]) -> Result<usize, EndpointError> {
        if self.fail_after.is_some_and(|n| self.got >= n) {
            return Err(EndpointError);
        }
        let n = data.len().min(self.per_turn);
        self.echo
            .extend(data[..n].iter().map(u8::to_ascii_uppercase));
        self.got += n;
        Ok(n)
    }
    fn produce(&mut self) -> Result<Produced, EndpointError> {
        if self.echo.is_empty() {
            return Ok(Produced::Nothing);
        }
        Ok(Produced::Data(std::mem::take(&mut self.echo).into()))
    }
    fn finish(&mut self) -> bool {
        self.finished = true;
        true
    }
}

#[test]
fn serve_channels_moves_both_ways_and_one_failing_end_costs_only_its_channel() {
    let mut l = Link::new(ProtocolVersion::V2);
    let good = l.server.open_channel(CALLER, l.now).unwrap();
    let bad = l.server.open_channel(CALLER, l.now).unwrap();
    let body = b"the quick brown fox jumps over the lazy dog".repeat(200);
    for h in [good, bad] {
        l.server.send(h, Bytes::from(body.clone()), l.now).unwrap();
    }
    l.server_to_client();
    let mut slots: Slots<Served<Echo>> = Slots::new();
    let mut n = 0;
    dispatch(&mut l.client, &mut slots, |_, _| {
        n += 1;
        Some(Served::new(Echo {
            per_turn: 1000,
            fail_after: (n == 2).then_some(3000),
            ..Echo::default()
        }))
    });
    let mut echoed = Vec::new();
    let mut server_slots = Slots::new();
    server_slots.insert(good, Wakes::default());
    server_slots.insert(bad, Wakes::default());
    for _ in 0..50 {
        serve_channels(&mut l.client, &mut slots, l.now);
        dispatch(&mut l.client, &mut slots, |_, _| None);
        l.client_to_server();
        dispatch(&mut l.server, &mut server_slots, |_, _| None);
        let b = recv_batch(&mut l.server, good, usize::MAX, 256);
        l.server.consumed(good, b.bytes);
        echoed.extend(b.segments.concat());
        let _ = recv_batch(&mut l.server, bad, usize::MAX, 256);
        if echoed.len() == body.len() {
            break;
        }
    }
    assert_eq!(echoed, body.to_ascii_uppercase());
    assert_eq!(
        slots.len(),
        1,
        "the failing end's channel is gone, the other stays"
    );
    assert!(
        server_slots
            .get(bad)
            .unwrap()
            .closed
            .borrow()
            .contains(&CloseCause::PeerClosed)
    );
    assert!(server_slots.get(good).unwrap().closed.borrow().is_empty());
    // The edge side closes the good channel: the end is finished once everything is in.
    l.server.close(good);
    let mut down = wire(&mut l.server, l.now);
    l.client
        .handle_input(&mut down, l.now + Duration::from_millis(1))
        .unwrap();
    dispatch(&mut l.client, &mut slots, |_, _| None);
    for _ in 0..5 {
        serve_channels(&mut l.client, &mut slots, l.now);
    }
    assert!(slots.is_empty(), "a finished end is dropped");
}

#[test]
fn write_with_stops_where_the_writer_would_block_and_resumes_there() {
    let mut c = WriteCursor::new(vec![
        Bytes::from_static(b"abc"),
        Bytes::from_static(b"defgh"),
    ]);
    let mut written = Vec::new();
    let mut calls = 0;
    // Takes 3 bytes, then would block, every other call.
    let mut writer = |s: &[IoSlice<'_>]| {
        calls += 1;
        if calls % 2 == 0 {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        let all: Vec<u8> = s.iter().flat_map(|x| x.iter().copied()).collect();
        let n = all.len().min(3);
        written.extend_from_slice(&all[..n]);
        Ok(n)
    };
    for _ in 0..10 {
        if c.is_empty() {
            break;
        }
        c.write_with(&mut writer).unwrap();
    }
    assert!(c.is_empty());
    assert_eq!(written, b"abcdefgh");
    let mut c = WriteCursor::new(vec![Bytes::from_static(b"x")]);
    let e = c.write_with(|_| Ok(0)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::WriteZero);
    assert_eq!(c.len(), 1, "nothing was taken");
}

/// A local end that takes at most `budget` bytes until the test gives it more, and sends
/// back what it took, upper-cased.
#[derive(Debug, Default)]
struct Slow {
    budget: usize,
    echo: Vec<u8>,
}

impl Endpoint for Slow {
    fn deliver(&mut self, data: &[u8]) -> Result<usize, EndpointError> {
        let n = data.len().min(self.budget);
        self.budget -= n;
        self.echo
            .extend(data[..n].iter().map(u8::to_ascii_uppercase));
        Ok(n)
    }
    fn produce(&mut self) -> Result<Produced, EndpointError> {
        if self.echo.is_empty() {
            return Ok(Produced::Nothing);
        }
        Ok(Produced::Data(std::mem::take(&mut self.echo).into()))
    }
    fn finish(&mut self) -> bool {
        true
    }
}

/// The client shell against a protocol-0 server (which cannot be paused): a slow end stalls
/// the tunnel, what the stall left waits while the "socket" is not read, and the turn that
/// ends the stall feeds it. Every byte comes back, in order; the end says what it waits on.
#[test]
fn a_client_shell_serves_a_slow_end_through_a_stall_without_losing_a_byte() {
    let Link {
        mut server,
        client,
        now,
    } = Link::new(ProtocolVersion::V0);
    let h = server.open_channel(CALLER, now).unwrap();
    let total = 600 * 1024;
    let data: Vec<u8> = (0..total).map(|i| b'a' + (i % 26) as u8).collect();
    for chunk in data.chunks(16 * 1024) {
        server.send(h, Bytes::copy_from_slice(chunk), now).unwrap();
    }
    // The tunnel socket, edge to client.
    let mut socket = wire(&mut server, now);
    let mut shell: ClientShell<StdRng, Slow> = ClientShell::new(client, 64 * 1024);
    let open = |_, _| Some(Served::new(Slow::default()));
    let (mut echoed, mut held, mut waited_to_deliver) = (Vec::new(), false, false);
    for _ in 0..10_000 {
        for _ in 0..10 {
            if !shell.turn(now, open).unwrap() {
                break;
            }
        }
        for (_, s) in shell.chans.iter_mut() {
            waited_to_deliver |= s.waits_to_deliver() && s.end.budget == 0;
            s.end.budget = 8 * 1024;
        }
        held |= shell.inbox.held();
        if shell.should_read() && !socket.is_empty() {
            let n = socket.len().min(32 * 1024);
            shell.inbox.buf_mut().extend_from_slice(&socket.split_to(n));
            shell.feed(now).unwrap();
        }
        let mut up = BytesMut::new();
        shell
            .out
            .write_with(|s| {
                s.iter().for_each(|x| up.extend_from_slice(x));
                Ok(s.iter().map(|x| x.len()).sum())
            })
            .unwrap();
        server.handle_input(&mut up, now).unwrap();
        let b = recv_batch(&mut server, h, usize::MAX, 256);
        server.consumed(h, b.bytes);
        echoed.extend(b.segments.concat());
        socket.extend_from_slice(&wire(&mut server, now));
        if echoed.len() == total {
            break;
        }
    }
    assert!(
        held,
        "the 256 KiB cap stalled the tunnel with bytes in the buffer"
    );
    assert!(
        waited_to_deliver,
        "the end said it had bytes it could not take"
    );
    assert_eq!(echoed.len(), total);
    assert!(echoed == data.to_ascii_uppercase(), "every byte, in order");
    let (_, s) = shell.chans.iter().next().unwrap();
    assert!(s.waits_to_produce(), "an end with nothing to send says so");
    assert!(!shell.turn(now, open).unwrap(), "nothing left to do");
}
