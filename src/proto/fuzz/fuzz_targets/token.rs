//! Fuzzes token framing and verification: never a panic, and the answers agree: a framed
//! token verifies or fails cleanly, and a verified token mints back into one that verifies
//! to the same claims.
//!
//! From `src/proto/fuzz`: `cargo +nightly fuzz run token corpus/token corpus/seed-token`
//! (`seed-token` holds the recorded SniTun tokens).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, UNIX_EPOCH};

use sluice_proto::Peek;
use sluice_proto::random::VectorPattern;
use sluice_proto::token::{FernetKey, frame_token, is_unsigned_token, verify_token};

fuzz_target!(|input: &[u8]| {
    // The key of the recorded vectors, so seeds are signed tokens.
    let key = FernetKey::from_bytes(&core::array::from_fn(|i| i as u8));
    let keys = [key.clone()];
    let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    match frame_token(input, &keys) {
        Ok(Peek::Complete(f)) => {
            assert_eq!(f.len, input.len());
            assert!(!is_unsigned_token(input, &keys));
            if let Ok(claims) = verify_token(input, &keys, now) {
                let again = claims.mint(&key, 1_700_000_000, &mut VectorPattern);
                assert_eq!(verify_token(again.as_bytes(), &keys, now).unwrap(), claims);
            }
        }
        Ok(Peek::NeedMore) => {
            // Not yet a signed token: verification cannot succeed on these bytes.
            assert!(verify_token(input, &keys, now).is_err());
        }
        Ok(Peek::NotThisProtocol) | Err(_) => {
            assert!(verify_token(input, &keys, now).is_err());
        }
    }
});
