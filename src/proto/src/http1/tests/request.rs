//! The request side alone: heads rewritten, bodies followed, bad framing refused.

use super::{CALLER, with_added};
use crate::http1::{Exchange, Http1Error, Pending, RequestRewriter};
use crate::limits::MAX_HTTP_HEAD_LEN;

/// Feeds `input` in pieces of every size from 1 to its length; all must give the same output.
fn check(input: &str, expected: Result<String, Http1Error>) {
    for piece in 1..=input.len().max(1) {
        let mut ex = Exchange::new(Some(CALLER.parse().unwrap()));
        let mut out = Vec::new();
        let mut result = Ok(());
        for chunk in input.as_bytes().chunks(piece) {
            result = ex.feed_request(chunk, &mut out);
            if result.is_err() {
                break;
            }
        }
        match (&expected, result) {
            (Ok(want), Ok(())) => {
                assert_eq!(String::from_utf8_lossy(&out), *want, "pieces of {piece}")
            }
            (Err(want), Err(got)) => assert_eq!(got, *want, "pieces of {piece}"),
            (want, got) => panic!("pieces of {piece}: expected {want:?}, got {got:?}"),
        }
    }
}

#[test]
fn adds_the_caller_to_every_request_and_drops_forged_fields() {
    let input = "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\nforwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n\r\n\
                 GET /two HTTP/1.1\r\nHost: a\r\n\r\n";
    let want = with_added("GET / HTTP/1.1\r\nHost: a\r\n")
        + &with_added("GET /two HTTP/1.1\r\nHost: a\r\n");
    check(input, Ok(want));
}

#[test]
fn follows_content_length_bodies() {
    // The body holds something that looks like a head: it must pass untouched.
    let body = "GET /x HTTP/1.1\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n";
    let input = format!(
        "POST /a HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}GET /b HTTP/1.1\r\n\r\n",
        body.len()
    );
    let want = with_added(&format!(
        "POST /a HTTP/1.1\r\nContent-Length: {}\r\n",
        body.len()
    )) + body
        + &with_added("GET /b HTTP/1.1\r\n");
    check(&input, Ok(want));
}

#[test]
fn follows_chunked_bodies_and_trailers() {
    let input = "POST /a HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n\
                 5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer-X: y\r\n\r\n\
                 GET /b HTTP/1.1\r\n\r\n";
    let want = with_added("POST /a HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n")
        + "5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer-X: y\r\n\r\n"
        + &with_added("GET /b HTTP/1.1\r\n");
    check(input, Ok(want));
}

#[test]
fn holds_what_follows_an_upgrade_request_until_the_answer() {
    let input = "GET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n\
                 \x01\x05GET / HTTP/1.1\r\n\r\n";
    let want =
        with_added("GET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n");
    check(input, Ok(want));
    // CONNECT too, and a body before the hold begins.
    let input = "CONNECT a:443 HTTP/1.1\r\nContent-Length: 2\r\n\r\nab\x16\x03\x01";
    check(
        input,
        Ok(with_added("CONNECT a:443 HTTP/1.1\r\nContent-Length: 2\r\n") + "ab"),
    );
    // `Upgrade` without `Connection: upgrade` is not a request to upgrade.
    let input = "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
    check(
        input,
        Ok(with_added("GET / HTTP/1.1\r\nUpgrade: websocket\r\n")
            + &with_added("GET /b HTTP/1.1\r\n")),
    );
}

#[test]
fn refuses_what_it_cannot_frame_like_a_server() {
    let m = Http1Error::Malformed;
    let rows: &[(&str, Http1Error)] = &[
        (
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
            m("both Content-Length and Transfer-Encoding"),
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
            m("conflicting Content-Length"),
        ),
        (
            "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            m("bad Content-Length"),
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
            m("Transfer-Encoding not ending in chunked"),
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
            m("bare CR or LF in the head"),
        ),
        (
            "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
            m("folded header line"),
        ),
        (
            "GET / HTTP/1.1\r\nBad Name: a\r\n\r\n",
            m("bad header name"),
        ),
        ("GET /\r\n\r\n", m("bad request line")),
        (
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            m("not HTTP/1.0 or HTTP/1.1"),
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\n",
            m("bad chunk size"),
        ),
        (
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY",
            m("chunk data not followed by CRLF"),
        ),
    ];
    for (input, want) in rows {
        check(input, Err(*want));
    }
}

#[test]
fn bounds_the_head() {
    let mut rw = RequestRewriter::new(None);
    let mut out = Vec::new();
    let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "a".repeat(MAX_HTTP_HEAD_LEN));
    assert_eq!(
        rw.feed(big.as_bytes(), &mut out, &mut Pending::default()),
        Err(Http1Error::HeadTooLarge)
    );
    assert!(out.is_empty());
    // One byte under the cap is a head.
    let mut rw = RequestRewriter::new(None);
    let head = "GET / HTTP/1.1\r\nX: ";
    let fill = MAX_HTTP_HEAD_LEN - head.len() - 4;
    let exact = format!("{head}{}\r\n\r\n", "a".repeat(fill));
    assert_eq!(exact.len(), MAX_HTTP_HEAD_LEN);
    let mut pending = Pending::default();
    rw.feed(exact.as_bytes(), &mut out, &mut pending).unwrap();
    assert_eq!(pending.len(), 1);
}

#[test]
fn writes_ipv6_callers_as_rfc_7239_nodes() {
    let mut rw = RequestRewriter::new(Some("2001:db8::1".parse().unwrap()));
    let mut out = Vec::new();
    rw.feed(b"GET / HTTP/1.1\r\n\r\n", &mut out, &mut Pending::default())
        .unwrap();
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("X-Forwarded-For: 2001:db8::1\r\n"), "{out}");
    assert!(
        out.contains("Forwarded: for=\"[2001:db8::1]\";proto=https\r\n"),
        "{out}"
    );
    assert!(rw.at_boundary());
}
