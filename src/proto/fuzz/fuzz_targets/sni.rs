//! Fuzzes the SNI peek: it never panics, and its answers agree with each other.
//!
//! From `src/proto/fuzz`: `cargo +nightly fuzz run sni corpus/sni corpus/seed-sni --
//! -max_len=70000` (new finds go to the ignored `corpus/sni`; `seed-sni` holds the captures
//! from `testdata/client_hello` and a few of them re-cut into small records).
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_proto::Peek;
use sluice_proto::limits::{DEFAULT_MAX_HELLO_LEN, MAX_HELLO_LEN_LIMIT};
use sluice_proto::sni::peek_client_hello;

fuzz_target!(|input: &[u8]| {
    // A small cap too, so that TooLarge and the parse paths both get inputs.
    for max in [512, DEFAULT_MAX_HELLO_LEN, MAX_HELLO_LEN_LIMIT] {
        let got = peek_client_hello(input, max);
        let Ok(Peek::Complete(hello)) = &got else {
            continue;
        };
        assert!(hello.len <= input.len(), "len {} past the input", hello.len);
        // The hello's own records give the same answer, and so do more bytes after it.
        assert_eq!(peek_client_hello(&input[..hello.len], max), got);
        let longer = [input, b"\x17\x03\x03\x00\x01x"].concat();
        assert_eq!(peek_client_hello(&longer, max), got);
        // Any strict prefix of a hello that parses needs more bytes: never "not TLS", no error.
        for cut in [0, 1, 5, 6, hello.len / 2, hello.len - 1] {
            if let Some(prefix) = input.get(..cut.min(hello.len - 1)) {
                assert_eq!(peek_client_hello(prefix, max), Ok(Peek::NeedMore), "cut {cut}");
            }
        }
    }
});
