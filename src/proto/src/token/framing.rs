//! Where does a token end? The token is sent alone, with no length, and the client then waits
//! for the challenge; SniTun takes whatever its first read returned. A token split over two
//! TCP segments fails there. Here the bytes received so far are checked each time more arrive:
//! a token is complete when its base64 length is one a Fernet token can have and a key's MAC
//! verifies.

use super::fernet::{self, FernetError, FernetKey, MIN_DECODED_LEN};
use crate::limits::MAX_TOKEN_LEN;
use crate::peek::Peek;

/// The outcome of [`frame_token`] for a complete token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFraming {
    /// Bytes of the buffer the token occupies (the whole buffer: nothing may follow it).
    pub len: usize,
}

/// Decides whether `buf`, everything received so far on a tunnel connection, is a whole token.
///
/// - `NotThisProtocol` unless it starts with `gA` (a Fernet 0x80 version byte);
/// - `NeedMore` while it could still be the prefix of a token signed by one of `keys`;
/// - `Complete` when it is a whole token (its MAC is then known to verify under a key);
/// - `Err` when it cannot become one: a byte outside urlsafe base64, text after padding,
///   longer than [`MAX_TOKEN_LEN`], or a padded (hence finished) token no key signed.
///
/// An unpadded candidate that no key signed stays `NeedMore`: it may be the prefix of a longer
/// token, and the caller's handshake timeout ends the wait.
pub fn frame_token(buf: &[u8], keys: &[FernetKey]) -> Result<Peek<TokenFraming>, FernetError> {
    match buf {
        [] => return Ok(Peek::NeedMore),
        [b'g'] => return Ok(Peek::NeedMore),
        [b'g', b'A', ..] => {}
        _ => return Ok(Peek::NotThisProtocol),
    }
    let padding = buf.iter().rev().take_while(|&&b| b == b'=').count();
    let body = &buf[..buf.len() - padding];
    if !body
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        // Either a foreign byte, or base64 after `=`.
        return Err(FernetError::NotBase64);
    }
    if padding > 2 || buf.len() > MAX_TOKEN_LEN {
        return Err(FernetError::NotBase64);
    }
    if !buf.len().is_multiple_of(4) {
        // Only a single `=` that a second one may still complete can wait for more.
        return if padding == 0 || (padding == 1 && buf.len() % 4 == 3) {
            Ok(Peek::NeedMore)
        } else {
            Err(FernetError::NotBase64)
        };
    }
    if !is_fernet_len(decoded_len(buf.len(), padding)) {
        return if padding > 0 {
            Err(FernetError::NotFernet)
        } else {
            Ok(Peek::NeedMore)
        };
    }
    let raw = fernet::decode(buf)?;
    for key in keys {
        if key.open(&raw).is_some() {
            return Ok(Peek::Complete(TokenFraming { len: buf.len() }));
        }
    }
    if padding > 0 {
        Err(FernetError::BadSignature)
    } else {
        Ok(Peek::NeedMore)
    }
}

fn decoded_len(b64_len: usize, padding: usize) -> usize {
    b64_len / 4 * 3 - padding
}

fn is_fernet_len(n: usize) -> bool {
    n >= MIN_DECODED_LEN && (n - MIN_DECODED_LEN).is_multiple_of(16)
}

/// Whether `buf` is a whole Fernet token by shape that no key signed: after a wait for more
/// bytes times out, this tells a token under a foreign key from a client that stalled.
pub fn is_unsigned_token(buf: &[u8], keys: &[FernetKey]) -> bool {
    let Ok(raw) = fernet::decode(buf) else {
        return false;
    };
    buf.starts_with(b"gA") && keys.iter().all(|k| k.open(&raw).is_none())
}
