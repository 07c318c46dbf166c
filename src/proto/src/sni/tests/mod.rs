//! The SNI peek's tests: one `check` helper, real captures, and rows of bad input.

mod captures;
mod encoder;
mod props;
mod rows;

use super::*;
use crate::limits::DEFAULT_MAX_HELLO_LEN;

/// What a test expects: the answer with the hello reduced to `(name, len)`.
type Expected<'a> = Result<Peek<(Option<&'a str>, usize)>, HelloError>;

fn check(bytes: &[u8], expected: Expected<'_>) {
    check_capped(bytes, DEFAULT_MAX_HELLO_LEN, expected);
}

fn check_capped(bytes: &[u8], max_hello_len: usize, expected: Expected<'_>) {
    let got = peek_client_hello(bytes, max_hello_len);
    let got = got.map(|peek| peek.map(|h| (h.server_name.map(|n| n.to_string()), h.len)));
    let expected = expected.map(|peek| peek.map(|(name, len)| (name.map(str::to_owned), len)));
    assert_eq!(got, expected, "{} bytes: {:02x?}", bytes.len(), Head(bytes));
}

/// Checks a whole valid hello (`bytes` is exactly its records): every strict prefix needs
/// more, the whole is complete, and bytes after it change nothing.
fn check_hello(bytes: &[u8], name: Option<&str>) {
    check_hello_prefixes(bytes, name, 1);
}

/// [`check_hello`], looking only at every `step`th prefix (the long fragmented inputs).
fn check_hello_prefixes(bytes: &[u8], name: Option<&str>, step: usize) {
    for end in (0..bytes.len()).step_by(step) {
        check(&bytes[..end], Ok(Peek::NeedMore));
    }
    check(&bytes[..bytes.len() - 1], Ok(Peek::NeedMore));
    check(bytes, complete(name, bytes.len()));
    for after in [
        &b"\x17\x03\x03\x00\x05hello"[..],
        b"\x14\x03\x03\x00\x01\x01",
        b"GET / HTTP/1.1\r\n",
        b"\x16\x03\x01\x00\x00",
        &[0xff; 100],
    ] {
        check(&[bytes, after].concat(), complete(name, bytes.len()));
    }
}

fn complete(name: Option<&str>, len: usize) -> Expected<'_> {
    Ok(Peek::Complete((name, len)))
}

fn malformed(what: Malformed) -> Expected<'static> {
    Err(HelloError::Malformed(what))
}

fn invalid_name(why: HostnameError) -> Expected<'static> {
    Err(HelloError::InvalidServerName(why))
}

/// Shows the first bytes of a failing input, not all 16 KiB of it.
struct Head<'a>(&'a [u8]);

impl std::fmt::Debug for Head<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = &self.0[..self.0.len().min(48)];
        write!(f, "{head:02x?}")?;
        if head.len() < self.0.len() {
            f.write_str("...")
        } else {
            Ok(())
        }
    }
}

#[test]
fn fatal_alert_is_a_plaintext_alert_record() {
    assert_eq!(
        fatal_alert(AlertDescription::DecodeError, 0x0301),
        [0x15, 0x03, 0x01, 0x00, 0x02, 0x02, 50]
    );
    assert_eq!(
        fatal_alert(AlertDescription::UnrecognizedName, 0x0303),
        [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 112]
    );
    assert_eq!(
        fatal_alert(AlertDescription::HandshakeFailure, 0x0300)[6],
        40
    );
    assert_eq!(fatal_alert(AlertDescription::InternalError, 0x0300)[6], 80);
}

#[test]
fn errors_map_to_alerts() {
    use AlertDescription as A;
    for (error, alert) in [
        (
            HelloError::TooLarge {
                len: 20_000,
                max: 16_384,
            },
            A::HandshakeFailure,
        ),
        (
            HelloError::InvalidServerName(HostnameError::IpLiteral),
            A::IllegalParameter,
        ),
        (Malformed::RecordOverflow.into(), A::RecordOverflow),
        (
            Malformed::UnexpectedContentType.into(),
            A::UnexpectedMessage,
        ),
        (Malformed::BadRecordVersion.into(), A::ProtocolVersion),
        (Malformed::BadLegacyVersion.into(), A::ProtocolVersion),
        (Malformed::EmptyRecord.into(), A::DecodeError),
        (Malformed::Truncated.into(), A::DecodeError),
        (Malformed::DuplicateServerName.into(), A::DecodeError),
    ] {
        assert_eq!(error.alert(), alert, "{error}");
    }
}
