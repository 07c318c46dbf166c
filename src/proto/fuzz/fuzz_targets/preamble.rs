//! The edge's connection preamble as a whole (PROXY header, first byte, ClientHello): no
//! panic on any input, under every listener's rules, and the answer never depends on how the
//! bytes were split into reads: a prefix that already decides, decides as the whole does.
//!
//! Run from `src/proto/fuzz` (new inputs go to the ignored `corpus/preamble`; the seeds are
//! real hellos, alone and behind real PROXY headers):
//!
//! ```sh
//! cargo +nightly fuzz run preamble corpus/preamble corpus/seed-preamble -- \
//!     -max_total_time=300 -max_len=70000
//! ```
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_proto::Peek;
use sluice_proto::preamble::{Preamble, Rules, classify};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the listener; the rest is what the client sent.
    let Some((&pick, input)) = data.split_first() else {
        return;
    };
    let rules = Rules {
        trust_proxy: pick & 1 != 0,
        browsers: pick & 2 == 0,
        tunnels: pick & 4 != 0,
        max_hello_len: if pick & 8 != 0 { 512 } else { 16 * 1024 },
    };
    let whole = classify(input, &rules);
    match &whole {
        Ok(Peek::Complete(Preamble::Browser { start, .. } | Preamble::Tunnel { start, .. })) => {
            assert!(*start <= input.len());
        }
        Ok(Peek::NotThisProtocol) => panic!("classify never answers NotThisProtocol"),
        Ok(Peek::NeedMore) => {
            // Undecided input is bounded: the edge never buffers past the cap (plus a
            // PROXY header).
            assert!(input.len() < sluice_proto::preamble::cap(&rules) + 2048 + 16);
        }
        Err(_) => {}
    }
    // Every cut the edge could have read it in.
    let step = (input.len() / 64).max(1);
    for cut in (0..input.len()).step_by(step) {
        match classify(&input[..cut], &rules) {
            Ok(Peek::NeedMore) => {}
            decided => assert_eq!(decided, whole, "cut at {cut}"),
        }
    }
});
