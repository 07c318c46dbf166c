//! Property tests: random conversations fed in random pieces, with the server answering only
//! what it has received, give the same bytes to the server as the model says; garbage on
//! either side never panics.

use proptest::prelude::*;

use super::{ADDED, CALLER};
use crate::http1::Exchange;

/// Body text that looks like messages of both directions: framing must not be fooled by it.
const NASTY: &str = "HTTP/1.1 101 Switching Protocols\r\n\r\nGET / HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n0\r\n\r\n";

fn body(n: usize) -> String {
    NASTY.chars().cycle().take(n).collect()
}

fn chunked(sizes: &[usize]) -> String {
    let mut s = String::new();
    for &n in sizes {
        s += &format!("{n:x}\r\n{}\r\n", body(n));
    }
    s + "0\r\nTrailer: t\r\n\r\n"
}

#[derive(Debug, Clone)]
enum Req {
    Get,
    Head,
    Post(usize),
    PostChunked(Vec<usize>),
    /// Asks to upgrade; the answer refuses.
    Upgrade,
}

#[derive(Debug, Clone)]
enum Resp {
    Length(usize),
    Chunked(Vec<usize>),
    NoContent,
    NotModified,
    ContinueThenLength(usize),
}

impl Req {
    /// What the browser sends and what the server must get.
    fn bytes(&self, i: usize) -> (String, String) {
        let (method, fields, body) = match self {
            Req::Get => ("GET", String::new(), String::new()),
            Req::Head => ("HEAD", String::new(), String::new()),
            Req::Post(n) => ("POST", format!("Content-Length: {n}\r\n"), body(*n)),
            Req::PostChunked(sizes) => (
                "POST",
                "Transfer-Encoding: chunked\r\n".to_owned(),
                chunked(sizes),
            ),
            Req::Upgrade => (
                "GET",
                "Connection: Upgrade\r\nUpgrade: websocket\r\n".to_owned(),
                String::new(),
            ),
        };
        let line = format!("{method} /{i} HTTP/1.1\r\nHost: a\r\n");
        (
            format!("{line}X-Forwarded-For: 6.6.6.6\r\n{fields}\r\n{body}"),
            format!("{line}{fields}{ADDED}\r\n{body}"),
        )
    }

    fn is_head(&self) -> bool {
        matches!(self, Req::Head)
    }
}

impl Resp {
    fn bytes(&self, to_head: bool) -> String {
        let with_len = |n: usize| {
            let b = if to_head { String::new() } else { body(n) };
            format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n{b}")
        };
        match self {
            Resp::Length(n) => with_len(*n),
            Resp::Chunked(sizes) if to_head => {
                let _ = sizes;
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned()
            }
            Resp::Chunked(sizes) => format!(
                "HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n{}",
                chunked(sizes)
            ),
            Resp::NoContent => "HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n".to_owned(),
            Resp::NotModified => "HTTP/1.1 304 Not Modified\r\n\r\n".to_owned(),
            Resp::ContinueThenLength(n) => {
                format!("HTTP/1.1 100 Continue\r\n\r\n{}", with_len(*n))
            }
        }
    }
}

fn req() -> impl Strategy<Value = Req> {
    prop_oneof![
        Just(Req::Get),
        Just(Req::Head),
        (0usize..200).prop_map(Req::Post),
        proptest::collection::vec(1usize..80, 0..4).prop_map(Req::PostChunked),
        Just(Req::Upgrade),
    ]
}

fn resp() -> impl Strategy<Value = Resp> {
    prop_oneof![
        (0usize..200).prop_map(Resp::Length),
        proptest::collection::vec(1usize..80, 0..4).prop_map(Resp::Chunked),
        Just(Resp::NoContent),
        Just(Resp::NotModified),
        (0usize..50).prop_map(Resp::ContinueThenLength),
    ]
}

/// A conversation: requests with their answers, then maybe an upgrade the server accepts,
/// followed by raw bytes each way.
#[derive(Debug, Clone)]
struct Conversation {
    exchanges: Vec<(Req, Resp)>,
    switch: Option<(String, String)>,
}

fn conversation() -> impl Strategy<Value = Conversation> {
    (
        proptest::collection::vec((req(), resp()), 0..6),
        proptest::option::of(("[ -~]{0,120}", "[ -~]{0,40}")),
    )
        .prop_map(|(exchanges, switch)| Conversation {
            exchanges,
            switch: switch.map(|(up, down)| (format!("{NASTY}{up}"), down)),
        })
}

/// The browser's stream, the server's, what the server must get, and for each request the
/// length of that output once the request is sent and of the server's stream once answered.
struct Streams {
    requests: String,
    responses: String,
    want: String,
    sent_at: Vec<usize>,
    answered_at: Vec<usize>,
}

fn streams(c: &Conversation) -> Streams {
    let mut s = Streams {
        requests: String::new(),
        responses: String::new(),
        want: String::new(),
        sent_at: Vec::new(),
        answered_at: Vec::new(),
    };
    for (i, (req, resp)) in c.exchanges.iter().enumerate() {
        let (raw, rewritten) = req.bytes(i);
        s.requests += &raw;
        s.want += &rewritten;
        s.sent_at.push(s.want.len());
        s.responses += &resp.bytes(req.is_head());
        s.answered_at.push(s.responses.len());
    }
    if let Some((up, down)) = &c.switch {
        let (raw, rewritten) = Req::Upgrade.bytes(c.exchanges.len());
        s.requests += &raw;
        s.want += &rewritten;
        s.sent_at.push(s.want.len());
        s.responses += "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        s.responses += down;
        s.answered_at.push(s.responses.len());
        s.requests += up;
        s.want += up;
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_server_gets_the_models_bytes_however_they_are_split(
        c in conversation(),
        steps in proptest::collection::vec((any::<bool>(), 1usize..64), 1..40),
    ) {
        let s = streams(&c);
        let mut ex = Exchange::new(Some(CALLER.parse().unwrap()));
        let (req, resp) = (s.requests.as_bytes(), s.responses.as_bytes());
        let (mut fed_req, mut fed_resp) = (0, 0);
        let mut out = Vec::new();
        // Each round feeds at least one byte, so this many rounds always finish.
        let rounds = req.len() + resp.len() + 1;
        for (round, &(prefer_request, size)) in steps.iter().cycle().enumerate() {
            if fed_req == req.len() && fed_resp == resp.len() {
                break;
            }
            prop_assert!(round <= rounds, "no progress: {} of {} request bytes, {} of {} response bytes, out {}",
                fed_req, req.len(), fed_resp, resp.len(), String::from_utf8_lossy(&out));
            // The server answers only requests it has received in full.
            let sent = s.sent_at.iter().take_while(|&&at| out.len() >= at).count();
            let may_answer = if sent == 0 { 0 } else { s.answered_at[sent - 1] };
            let can_respond = fed_resp < may_answer;
            if (prefer_request || !can_respond) && fed_req < req.len() {
                let n = size.min(req.len() - fed_req);
                ex.feed_request(&req[fed_req..fed_req + n], &mut out).unwrap();
                fed_req += n;
            } else {
                prop_assert!(can_respond, "blocked: out {}", String::from_utf8_lossy(&out));
                let n = size.min(may_answer - fed_resp);
                ex.feed_response(&resp[fed_resp..fed_resp + n], &mut out).unwrap();
                fed_resp += n;
            }
        }
        prop_assert_eq!(String::from_utf8_lossy(&out), s.want);
    }

    /// Arbitrary bytes on both sides, in arbitrary pieces: errors allowed, panics not.
    #[test]
    fn garbage_never_panics(
        pieces in proptest::collection::vec((any::<bool>(), proptest::collection::vec(any::<u8>(), 0..200)), 0..30),
        prefix in 0usize..3,
    ) {
        let mut ex = Exchange::new(None);
        let mut out = Vec::new();
        // A plausible start gets the garbage past the first checks.
        let starts: [&[u8]; 3] = [
            b"",
            b"GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n",
            b"CONNECT a:1 HTTP/1.1\r\n\r\n",
        ];
        let _ = ex.feed_request(starts[prefix], &mut out);
        for (request_side, bytes) in pieces {
            let r = if request_side {
                ex.feed_request(&bytes, &mut out)
            } else {
                ex.feed_response(&bytes, &mut out)
            };
            if r.is_err() {
                break;
            }
        }
    }
}
