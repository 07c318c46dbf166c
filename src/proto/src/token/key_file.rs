//! The Fernet key file, one format for every reader: the edge's `--fernet-keys`, the session
//! master's, the load generator's. One urlsafe-base64 key a line; blank lines and `#` comments
//! are skipped; at least one key. The first key mints, any of them verifies.

use super::{FernetKey, FernetKeyError};

/// Why a key file's text was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    /// Nothing but blank lines and comments.
    #[error("holds no key")]
    Empty,
    /// A line that is not a key (1-based).
    #[error("line {line} is not a Fernet key: {source}")]
    BadKey {
        /// The line, counted from 1.
        line: usize,
        /// What is wrong with it.
        source: FernetKeyError,
    },
}

/// Parses a key file's text into its keys, in order.
pub fn parse_key_file(text: &str) -> Result<Vec<FernetKey>, KeyFileError> {
    // A file saved by an editor that writes a byte-order mark is still a key file.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut keys = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = FernetKey::parse(line).map_err(|source| KeyFileError::BadKey {
            line: i + 1,
            source,
        })?;
        keys.push(key);
    }
    if keys.is_empty() {
        return Err(KeyFileError::Empty);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn keys_come_in_order_and_comments_and_blanks_are_skipped() {
        let b = FernetKey::from_bytes(&[9; 32]).to_base64();
        let text = format!("# rotation: the new key first\n\n  {b}  \n{A}\n");
        let keys = parse_key_file(&text).unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(parse_key_file(&format!("\u{feff}{A}\n")).unwrap().len(), 1);
        assert_eq!(keys[0].to_base64(), b);
        assert_eq!(keys[1].to_base64(), A);
    }

    #[test]
    fn an_empty_file_and_a_bad_line_are_refused_by_line() {
        assert_eq!(
            parse_key_file("# only a comment\n\n"),
            Err(KeyFileError::Empty)
        );
        let bad = parse_key_file(&format!("{A}\n\nnope\n")).unwrap_err();
        assert!(
            matches!(bad, KeyFileError::BadKey { line: 3, .. }),
            "{bad:?}"
        );
        assert!(
            bad.to_string().starts_with("line 3 is not a Fernet key"),
            "{bad}"
        );
    }
}
