//! Terminate mode's request rewriter and response watcher (they carry the caller's address: a
//! framing bug there lets a forged `X-Forwarded-For` reach the home server). No panic on any
//! conversation; and the request side frames alike however its bytes were split into reads:
//! the same bytes in one feed or in pieces give the same output and the same verdict.
//!
//! Input: a first byte of split sizes, then the browser's bytes; after a `\0\0\0\0` marker, the
//! server's bytes, fed in alternation with the browser's.
//!
//! ```sh
//! cargo +nightly fuzz run http1 corpus/http1 corpus/seed-http1 -- -max_total_time=300
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_proto::http1::Exchange;

const CALLER: &str = "192.0.2.9";

fn requests_only(input: &[u8], piece: usize) -> (Vec<u8>, Option<String>) {
    let mut ex = Exchange::new(CALLER.parse().ok());
    let mut out = Vec::new();
    for chunk in input.chunks(piece.max(1)) {
        if let Err(e) = ex.feed_request(chunk, &mut out) {
            return (out, Some(e.to_string()));
        }
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (browser, server) = match rest.windows(4).position(|w| w == b"\0\0\0\0") {
        Some(i) => (&rest[..i], &rest[i + 4..]),
        None => (rest, &[][..]),
    };
    // Split invariance of the request side alone. Output is compared up to the verdict: a
    // stream fed whole fails where a piecewise one may have passed more before failing.
    let (whole, whole_err) = requests_only(browser, browser.len());
    let (pieces, pieces_err) = requests_only(browser, 1 + (pick as usize % 17));
    assert_eq!(whole_err.is_some(), pieces_err.is_some(), "the verdict depends on the split");
    if whole_err.is_none() {
        assert_eq!(whole, pieces, "the output depends on the split");
    }
    // Both directions interleaved: nothing may panic, and what reaches the server is bounded
    // by what the browser sent plus the connector's own fields per request.
    let mut ex = Exchange::new(CALLER.parse().ok());
    let mut out = Vec::new();
    let step = 1 + (pick as usize >> 4);
    let (mut b, mut s) = (browser.chunks(step), server.chunks(step));
    loop {
        let (nb, ns) = (b.next(), s.next());
        if nb.is_none() && ns.is_none() {
            break;
        }
        if let Some(c) = nb
            && ex.feed_request(c, &mut out).is_err()
        {
            break;
        }
        if let Some(c) = ns
            && ex.feed_response(c, &mut out).is_err()
        {
            break;
        }
    }
    // A request head is at least 16 bytes ("GET / HTTP/1.1\r\n" plus the empty line), and
    // gets at most ADDED bytes of the connector's forwarding fields.
    const ADDED: usize = 128;
    let bound = browser.len() + (browser.len() / 16 + 1) * ADDED;
    assert!(out.len() <= bound, "{} bytes out of {}", out.len(), browser.len());
});
