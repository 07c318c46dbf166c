//! Property tests: random valid hellos cut into random records, and random damage to them.

use proptest::prelude::*;
use proptest::sample::Index;

use super::encoder::*;
use super::*;

/// A random valid hello, the records carrying it, and the name the peek must find.
#[derive(Debug, Clone)]
struct Case {
    records: Vec<u8>,
    version: u16,
    name: Option<String>,
}

/// A valid host name in random case, maybe with a trailing dot, and its normalized form.
fn host_name() -> impl Strategy<Value = (String, String)> {
    let label = "[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,20}[a-zA-Z0-9_])?";
    // The last label is not all digits (that would be an IP literal).
    let last = "[a-zA-Z][a-zA-Z0-9-]{0,10}[a-zA-Z0-9]";
    (prop::collection::vec(label, 0..4), last, any::<bool>()).prop_map(|(mut labels, last, dot)| {
        labels.push(last);
        let name = labels.join(".");
        let sent = if dot {
            format!("{name}.")
        } else {
            name.clone()
        };
        (sent, name.to_ascii_lowercase())
    })
}

fn grease() -> impl Strategy<Value = u16> {
    (0u16..16).prop_map(|i| 0x0a0a + 0x1010 * i)
}

fn other_extension() -> impl Strategy<Value = (u16, Vec<u8>)> {
    let kind = prop_oneof![grease(), 1u16.., Just(0xfe0d), Just(0x0015)];
    (kind, prop::collection::vec(any::<u8>(), 0..200))
}

fn case() -> impl Strategy<Value = Case> {
    let suite = prop_oneof![any::<u16>(), grease()];
    let record_size = prop_oneof![1usize..8, 8usize..600, 600usize..=16384];
    (
        (
            prop::collection::vec(any::<u8>(), 0..=32),
            prop::collection::vec(suite, 1..40),
            prop::collection::vec(any::<u8>(), 1..4),
            0x0300u16..=0x0303,
        ),
        prop::option::weighted(0.9, prop::collection::vec(other_extension(), 0..12)),
        prop::option::of((host_name(), any::<Index>())),
        prop::collection::vec(record_size, 1..6),
        0x0300u16..=0x0304,
    )
        .prop_map(
            |((session_id, suites_list, compression, legacy), extensions, sni, sizes, version)| {
                let mut spec = HelloSpec::new(None);
                spec.legacy_version = legacy;
                spec.session_id = session_id;
                spec.cipher_suites = suites(&suites_list);
                spec.compression_methods = compression;
                spec.extensions = extensions;
                let mut name = None;
                if let (Some(extensions), Some(((sent, normalized), at))) =
                    (&mut spec.extensions, sni)
                {
                    let at = at.index(extensions.len() + 1);
                    extensions.insert(at, (SERVER_NAME, sni_ext(&[(HOST_NAME, sent.as_bytes())])));
                    name = Some(normalized);
                }
                let records = fragment(&spec.message(), version, &sizes);
                Case {
                    records,
                    version,
                    name,
                }
            },
        )
}

/// The invariants every answer keeps, whatever the input.
fn assert_invariants(input: &[u8]) -> Result<(), TestCaseError> {
    let got = peek_client_hello(input, DEFAULT_MAX_HELLO_LEN);
    if let Ok(Peek::Complete(hello)) = &got {
        prop_assert!(hello.len <= input.len());
        prop_assert_eq!(
            &peek_client_hello(&input[..hello.len], DEFAULT_MAX_HELLO_LEN),
            &got
        );
        let longer = [input, b"\x17\x03\x03\x00\x01x"].concat();
        prop_assert_eq!(&peek_client_hello(&longer, DEFAULT_MAX_HELLO_LEN), &got);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn round_trip(case in case()) {
        let got = peek_client_hello(&case.records, DEFAULT_MAX_HELLO_LEN);
        let expected = ClientHello {
            server_name: case.name.as_deref().map(|n| n.parse().expect("valid test name")),
            len: case.records.len(),
            record_version: case.version,
        };
        prop_assert_eq!(got, Ok(Peek::Complete(expected)));
        assert_invariants(&case.records)?;
    }

    #[test]
    fn prefixes_need_more(case in case(), cut in any::<Index>()) {
        let cut = cut.index(case.records.len());
        prop_assert_eq!(peek_client_hello(&case.records[..cut], DEFAULT_MAX_HELLO_LEN), Ok(Peek::NeedMore));
    }

    #[test]
    fn damage_never_panics(
        case in case(),
        edits in prop::collection::vec((any::<Index>(), any::<u8>()), 1..8),
        cut in prop::option::of(any::<Index>()),
    ) {
        let mut bytes = case.records;
        for (at, byte) in edits {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        assert_invariants(&bytes)?;
        for end in 0..bytes.len().min(64) {
            assert_invariants(&bytes[..end])?;
        }
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600), header in 0usize..3) {
        // Give random bytes a real header now and then, so they get past the first checks.
        let prefix: &[u8] = match header {
            0 => b"",
            1 => b"\x16\x03\x01",
            _ => b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        };
        assert_invariants(&[prefix, &bytes].concat())?;
    }
}
