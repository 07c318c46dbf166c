//! The response side alone: which requests each response answers, and when a connection
//! stops being HTTP.

use crate::http1::{Answer, Asked, Http1Error, Pending, ResponseWatcher};
use crate::limits::MAX_HTTP_HEAD_LEN;

const GET: Asked = Asked {
    head: false,
    connect: false,
    upgrade: false,
};
const HEAD: Asked = Asked { head: true, ..GET };
const CONNECT: Asked = Asked {
    connect: true,
    ..GET
};
const UPGRADE: Asked = Asked {
    upgrade: true,
    ..GET
};

/// What feeding a response stream gave.
#[derive(Debug, PartialEq, Eq)]
struct Seen {
    /// Each answer, with the offset in the stream just after the bytes that decided it.
    answers: Vec<(usize, Answer)>,
    /// Requests still awaiting an answer.
    pending: usize,
    /// Whether the watcher stopped framing.
    done: bool,
}

fn feed_all(asked: &[Asked], input: &[u8], piece: usize) -> Result<Seen, Http1Error> {
    let mut pending = Pending::default();
    for a in asked {
        pending.push(*a).unwrap();
    }
    let mut w = ResponseWatcher::new();
    let mut answers = Vec::new();
    let mut offset = 0;
    for chunk in input.chunks(piece) {
        let mut rest = chunk;
        while !rest.is_empty() {
            let got = w.feed(rest, &mut pending)?;
            assert!(got.used <= rest.len());
            offset += got.used;
            rest = &rest[got.used..];
            match got.answer {
                Some(a) => answers.push((offset, a)),
                None => assert!(rest.is_empty(), "stopped without an answer"),
            }
        }
    }
    Ok(Seen {
        answers,
        pending: pending.len(),
        done: w.is_done(),
    })
}

/// Feeds `input` in pieces of every size; all must agree with `want`.
fn check(asked: &[Asked], input: &str, want: Result<Seen, Http1Error>) {
    for piece in 1..=input.len().max(1) {
        assert_eq!(
            feed_all(asked, input.as_bytes(), piece),
            want,
            "{input:?} in pieces of {piece}"
        );
    }
}

fn ok(answers: &[(usize, Answer)], pending: usize, done: bool) -> Result<Seen, Http1Error> {
    Ok(Seen {
        answers: answers.to_vec(),
        pending,
        done,
    })
}

#[test]
fn frames_pipelined_responses_by_length_chunks_and_status() {
    let two = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello\
               HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n";
    check(&[GET, GET, GET], two, ok(&[], 1, false));
    // No body after HEAD, 204 or 304, whatever the fields say; 1xx are interim.
    let bodyless = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n\
                    HTTP/1.1 204 No Content\r\n\r\n\
                    HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
                    HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n";
    check(&[HEAD, GET, GET], bodyless, ok(&[], 0, false));
    // A reason phrase is optional; HTTP/1.0 is framed the same way.
    check(
        &[GET, GET],
        "HTTP/1.1 204\r\n\r\nHTTP/1.0 200 Fine by me\r\nContent-Length: 0\r\n\r\n",
        ok(&[], 0, false),
    );
    // Neither a length nor chunked: the body runs to the close, nothing after it is framed.
    let until_close = "HTTP/1.0 200 OK\r\n\r\nHTTP/1.1 101 Switching Protocols\r\n\r\n";
    check(&[GET, UPGRADE], until_close, ok(&[], 2, true));
    let other_coding = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nzzz";
    check(&[GET], other_coding, ok(&[], 1, true));
}

#[test]
fn answers_a_protocol_switch() {
    let switch = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
    let input = format!("{switch}\x01\x05hello");
    check(
        &[UPGRADE],
        &input,
        ok(&[(switch.len(), Answer::Switched)], 0, true),
    );
    // After the pipelined answers before it, and after interim responses.
    let first = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
    let interim = "HTTP/1.1 100 Continue\r\n\r\n";
    let input = format!("{first}{interim}{switch}");
    check(
        &[GET, UPGRADE],
        &input,
        ok(&[(input.len(), Answer::Switched)], 0, true),
    );
    // CONNECT switches on any 2xx, even one with a length.
    let yes = "HTTP/1.1 200 Connection Established\r\nContent-Length: 10\r\n\r\n";
    check(
        &[CONNECT],
        &format!("{yes}\x16\x03\x01"),
        ok(&[(yes.len(), Answer::Switched)], 0, true),
    );
}

#[test]
fn answers_a_refusal_once_the_whole_response_is_in() {
    let no = "HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nno!";
    check(&[UPGRADE], no, ok(&[(no.len(), Answer::Refused)], 0, false));
    let no =
        "HTTP/1.1 407 Proxy Authentication Required\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    check(&[CONNECT], no, ok(&[(no.len(), Answer::Refused)], 0, false));
    // A server may ignore Upgrade and answer normally.
    let plain = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    check(
        &[UPGRADE],
        plain,
        ok(&[(plain.len(), Answer::Refused)], 0, false),
    );
    // A 101 inside a body is body.
    let fake = "HTTP/1.1 101 Switching Protocols\r\n\r\n";
    let input = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{fake}HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        fake.len()
    );
    check(
        &[GET, UPGRADE],
        &input,
        ok(&[(input.len(), Answer::Refused)], 0, false),
    );
}

#[test]
fn a_response_the_server_sends_first_answers_nothing() {
    let timeout = "HTTP/1.1 408 Request Timeout\r\nContent-Length: 4\r\n\r\nbye.";
    check(&[], timeout, ok(&[], 0, false));
}

#[test]
fn refuses_what_it_cannot_frame() {
    let m = Http1Error::MalformedResponse;
    let rows: &[(&[Asked], &str, Http1Error)] = &[
        (
            &[GET],
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            m("101 to a request that did not ask to upgrade"),
        ),
        (
            &[],
            "HTTP/1.1 101 Switching Protocols\r\n\r\n",
            m("101 to a request that did not ask to upgrade"),
        ),
        (
            &[GET],
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            m("both Content-Length and Transfer-Encoding"),
        ),
        (
            &[GET],
            "HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\n",
            m("conflicting Content-Length"),
        ),
        (
            &[GET],
            "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\n",
            m("bad Content-Length"),
        ),
        (&[GET], "HTTP/1.1 20 OK\r\n\r\n", m("bad status code")),
        (&[GET], "HTTP/1.1 2000\r\n\r\n", m("bad status code")),
        (&[GET], "HTTP/1.1 099 Low\r\n\r\n", m("bad status code")),
        (
            &[GET],
            "HTTP/2 200 OK\r\n\r\n",
            m("not HTTP/1.0 or HTTP/1.1"),
        ),
        (&[GET], "HTTP/1.1\r\n\r\n", m("bad status line")),
        (
            &[GET],
            "HTTP/1.1 200 OK\r\nA: b\nC: d\r\n\r\n",
            m("bare CR or LF in the head"),
        ),
        (
            &[GET],
            "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n",
            m("folded header line"),
        ),
        (
            &[GET],
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n",
            m("chunk data not followed by CRLF"),
        ),
        (
            &[GET],
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n",
            m("bad chunk size"),
        ),
    ];
    for (asked, input, want) in rows {
        check(asked, input, Err(*want));
    }
}

#[test]
fn bounds_the_head_and_the_chunk_lines() {
    let big = format!("HTTP/1.1 200 OK\r\nX: {}", "a".repeat(MAX_HTTP_HEAD_LEN));
    assert_eq!(
        feed_all(&[GET], big.as_bytes(), big.len()),
        Err(Http1Error::ResponseHeadTooLarge)
    );
    let long_line = format!(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;{}",
        "e".repeat(crate::limits::MAX_HTTP_LINE_LEN)
    );
    assert_eq!(
        feed_all(&[GET], long_line.as_bytes(), 1000),
        Err(Http1Error::MalformedResponse(
            "chunk or trailer line too long"
        ))
    );
}
