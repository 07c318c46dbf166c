//! Both directions together: what follows a request that may switch protocols waits for the
//! server's answer, at every split point of both streams.

use super::{CALLER, with_added};
use crate::http1::{Exchange, Http1Error};
use crate::limits::{MAX_HTTP_HELD_LEN, MAX_HTTP_PENDING};

const UPGRADE: &str =
    "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
const FORGED: &str = "GET /next HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n";
const REFUSED: &str = "HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\n\r\nno upgrade\n";
const SWITCHED: &str = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";

fn exchange() -> Exchange {
    Exchange::new(Some(CALLER.parse().unwrap()))
}

fn rewritten_upgrade() -> String {
    with_added("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n")
}

/// Feeds `requests[..split]`, then `response` in pieces of `piece`, then the rest of
/// `requests`; returns what went to the server.
fn run(requests: &str, split: usize, response: &str, piece: usize) -> Result<String, Http1Error> {
    let mut ex = exchange();
    let mut out = Vec::new();
    ex.feed_request(&requests.as_bytes()[..split], &mut out)?;
    for chunk in response.as_bytes().chunks(piece) {
        ex.feed_response(chunk, &mut out)?;
    }
    ex.feed_request(&requests.as_bytes()[split..], &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Every split of the requests after the upgrade head, every piece size of the response.
fn check(requests: &str, response: &str, want: &str) {
    for split in UPGRADE.len()..=requests.len() {
        for piece in 1..=response.len() {
            assert_eq!(
                run(requests, split, response, piece).as_deref(),
                Ok(want),
                "split at {split}, response in pieces of {piece}"
            );
        }
    }
}

#[test]
fn after_a_refused_upgrade_pipelined_requests_are_rewritten() {
    let requests = format!("{UPGRADE}{FORGED}");
    let want = rewritten_upgrade() + &with_added("GET /next HTTP/1.1\r\nHost: a\r\n");
    check(&requests, REFUSED, &want);
}

#[test]
fn after_a_switch_what_follows_passes_untouched() {
    let requests = format!("{UPGRADE}\x01\x05{FORGED}");
    let want = rewritten_upgrade() + "\x01\x05" + FORGED;
    check(&requests, &format!("{SWITCHED}\x01\x02hi"), &want);
}

#[test]
fn until_the_answer_nothing_after_the_upgrade_request_is_sent() {
    let mut ex = exchange();
    let mut out = Vec::new();
    ex.feed_request(format!("{UPGRADE}{FORGED}").as_bytes(), &mut out)
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out), rewritten_upgrade());
    assert!(ex.is_holding());
    // Interim responses and a partial final one decide nothing.
    ex.feed_response(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 400 Bad", &mut out)
        .unwrap();
    assert!(ex.is_holding());
    assert_eq!(out.len(), rewritten_upgrade().len());
}

#[test]
fn a_connect_switches_on_2xx_and_stays_http_otherwise() {
    let connect = "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n";
    let rewritten = with_added("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n");
    for (response, want) in [
        ("HTTP/1.1 200 OK\r\n\r\n", format!("{rewritten}{FORGED}")),
        (
            "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
            rewritten.clone() + &with_added("GET /next HTTP/1.1\r\nHost: a\r\n"),
        ),
    ] {
        let mut ex = exchange();
        let mut out = Vec::new();
        ex.feed_request(format!("{connect}{FORGED}").as_bytes(), &mut out)
            .unwrap();
        ex.feed_response(response.as_bytes(), &mut out).unwrap();
        assert_eq!(String::from_utf8_lossy(&out), want, "{response:?}");
    }
}

#[test]
fn an_answer_before_the_upgrade_requests_body_ends_applies_after_it() {
    let head =
        "POST /up HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: x\r\nContent-Length: 4\r\n\r\n";
    let rewritten = with_added(
        "POST /up HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: x\r\nContent-Length: 4\r\n",
    );
    for (response, after) in [
        (REFUSED, with_added("GET /next HTTP/1.1\r\nHost: a\r\n")),
        (SWITCHED, FORGED.to_owned()),
    ] {
        let mut ex = exchange();
        let mut out = Vec::new();
        ex.feed_request(format!("{head}ab").as_bytes(), &mut out)
            .unwrap();
        ex.feed_response(response.as_bytes(), &mut out).unwrap();
        ex.feed_request(format!("cd{FORGED}").as_bytes(), &mut out)
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out),
            format!("{rewritten}abcd{after}"),
            "{response:?}"
        );
    }
}

#[test]
fn a_second_upgrade_after_a_refusal_holds_again() {
    let requests = format!("{UPGRADE}{UPGRADE}{FORGED}");
    let mut ex = exchange();
    let mut out = Vec::new();
    ex.feed_request(requests.as_bytes(), &mut out).unwrap();
    ex.feed_response(REFUSED.as_bytes(), &mut out).unwrap();
    assert!(
        ex.is_holding(),
        "the second upgrade waits for its own answer"
    );
    assert_eq!(
        String::from_utf8_lossy(&out),
        rewritten_upgrade() + &rewritten_upgrade()
    );
    ex.feed_response(REFUSED.as_bytes(), &mut out).unwrap();
    assert!(
        String::from_utf8_lossy(&out).ends_with(&with_added("GET /next HTTP/1.1\r\nHost: a\r\n"))
    );
}

#[test]
fn holds_at_most_the_cap() {
    let mut ex = exchange();
    let mut out = Vec::new();
    ex.feed_request(UPGRADE.as_bytes(), &mut out).unwrap();
    ex.feed_request(&vec![b'x'; MAX_HTTP_HELD_LEN], &mut out)
        .unwrap();
    assert_eq!(
        ex.feed_request(b"x", &mut out),
        Err(Http1Error::HeldTooLarge)
    );
}

#[test]
fn bounds_the_requests_awaiting_an_answer() {
    let mut ex = exchange();
    let mut out = Vec::new();
    let get = "GET / HTTP/1.1\r\n\r\n";
    for _ in 0..MAX_HTTP_PENDING {
        ex.feed_request(get.as_bytes(), &mut out).unwrap();
    }
    assert_eq!(
        ex.feed_request(get.as_bytes(), &mut out),
        Err(Http1Error::TooManyPending)
    );
    // Answers make room.
    let mut ex = exchange();
    for _ in 0..MAX_HTTP_PENDING {
        ex.feed_request(get.as_bytes(), &mut out).unwrap();
    }
    ex.feed_response(b"HTTP/1.1 204 No Content\r\n\r\n", &mut out)
        .unwrap();
    assert_eq!(ex.pending(), MAX_HTTP_PENDING - 1);
    ex.feed_request(get.as_bytes(), &mut out).unwrap();
}

#[test]
fn a_response_to_head_has_no_body_even_with_a_length() {
    let mut ex = exchange();
    let mut out = Vec::new();
    ex.feed_request(
        format!("HEAD / HTTP/1.1\r\n\r\n{UPGRADE}{FORGED}").as_bytes(),
        &mut out,
    )
    .unwrap();
    // Were the HEAD answer's length taken as a body, the refusal would be swallowed.
    ex.feed_response(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{REFUSED}",
            REFUSED.len()
        )
        .as_bytes(),
        &mut out,
    )
    .unwrap();
    assert!(!ex.is_holding());
    assert!(
        String::from_utf8_lossy(&out).ends_with(&with_added("GET /next HTTP/1.1\r\nHost: a\r\n"))
    );
}
