//! The ClientHello itself (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2) and its server_name
//! extension (RFC 6066 §3), decoded completely before the name is looked at.

use super::Malformed;
use super::reader::{Fragments, Reader};
use crate::hostname::{Hostname, HostnameError};
use crate::limits::{MAX_HOSTNAME_LEN, MAX_SESSION_ID_LEN};

const EXTENSION_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST_NAME: u8 = 0;
const RANDOM_LEN: usize = 32;
/// A name with its one allowed trailing dot.
pub(super) const MAX_RAW_NAME_LEN: usize = MAX_HOSTNAME_LEN + 1;

/// Room for a `host_name` that straddles two records.
pub(super) type Scratch = [u8; MAX_RAW_NAME_LEN];

/// A `host_name` as sent, kept unvalidated (and unallocated) until the whole hello has been
/// checked: borrowed from the record that holds it, or copied to a [`Scratch`] when split.
#[derive(Debug, Clone, Copy)]
pub(super) enum RawName<'a> {
    /// The name's bytes.
    Bytes(&'a [u8]),
    /// A name longer than any host name; its bytes are not kept.
    TooLong,
}

impl<'a> RawName<'a> {
    fn read(r: &mut Reader<'_, 'a>, scratch: &'a mut Scratch) -> Result<Self, Malformed> {
        let len = r.left();
        if len > MAX_RAW_NAME_LEN {
            r.skip_rest()?;
            return Ok(Self::TooLong);
        }
        if let Some(bytes) = r.take_in_record(len) {
            return Ok(Self::Bytes(bytes));
        }
        let slot = scratch.get_mut(..len).ok_or(Malformed::Truncated)?;
        r.copy_to(slot)?;
        Ok(Self::Bytes(slot))
    }

    /// Validates and normalizes the name.
    pub(super) fn to_hostname(self) -> Result<Hostname, HostnameError> {
        match self {
            Self::Bytes(name) => Hostname::parse(name),
            Self::TooLong => Err(HostnameError::TooLong),
        }
    }
}

/// Decodes the handshake message carried by `records` (whole records, exactly those
/// `records::locate` found) and returns its `host_name`, if any.
pub(super) fn parse<'a>(
    records: &'a [u8],
    scratch: &'a mut Scratch,
) -> Result<Option<RawName<'a>>, Malformed> {
    let mut fragments = Fragments::new(records);
    let mut stream = Reader::new(&mut fragments);
    // Type and length were checked by `records::locate`; the length still bounds the body.
    stream.u8()?;
    let len = stream.u24()?;
    let mut body = stream.sub(len)?;
    let name = client_hello(&mut body, scratch)?;
    body.finish()?;
    Ok(name)
}

fn client_hello<'a>(
    body: &mut Reader<'_, 'a>,
    scratch: &'a mut Scratch,
) -> Result<Option<RawName<'a>>, Malformed> {
    let legacy_version = body.u16()?;
    if legacy_version >> 8 != 3 {
        return Err(Malformed::BadLegacyVersion);
    }
    body.skip(RANDOM_LEN)?;

    let mut session_id = body.sub_u8()?;
    if session_id.left() > MAX_SESSION_ID_LEN {
        return Err(Malformed::SessionIdTooLong);
    }
    session_id.skip_rest()?;

    let mut cipher_suites = body.sub_u16()?;
    if cipher_suites.is_empty() || cipher_suites.left() % 2 != 0 {
        return Err(Malformed::BadCipherSuites);
    }
    cipher_suites.skip_rest()?;

    let mut compression_methods = body.sub_u8()?;
    if compression_methods.is_empty() {
        return Err(Malformed::NoCompressionMethods);
    }
    compression_methods.skip_rest()?;

    // TLS 1.0 and 1.1 clients may end the hello here (RFC 5246 §7.4.1.2).
    if body.is_empty() {
        return Ok(None);
    }
    let mut extensions = body.sub_u16()?;
    let mut server_name = None;
    // Taken by the first server_name extension: a second one finds it gone.
    let mut scratch = Some(scratch);
    while !extensions.is_empty() {
        let extension_type = extensions.u16()?;
        let mut data = extensions.sub_u16()?;
        if extension_type == EXTENSION_SERVER_NAME {
            let scratch = scratch.take().ok_or(Malformed::DuplicateServerName)?;
            server_name = server_name_list(&mut data, scratch)?;
            data.finish()?;
        } else {
            // GREASE and every other extension: not ours to judge.
            data.skip_rest()?;
        }
    }
    Ok(server_name)
}

/// Reads a ClientHello's server_name extension data and returns its `host_name`.
fn server_name_list<'a>(
    data: &mut Reader<'_, 'a>,
    scratch: &'a mut Scratch,
) -> Result<Option<RawName<'a>>, Malformed> {
    // Only a server's answer has an empty extension; the client's list is `<1..2^16-1>`.
    if data.is_empty() {
        return Err(Malformed::EmptyServerNameList);
    }
    let mut list = data.sub_u16()?;
    if list.is_empty() {
        return Err(Malformed::EmptyServerNameList);
    }
    let mut host_name = None;
    let mut scratch = Some(scratch);
    while !list.is_empty() {
        let name_type = list.u8()?;
        // Every name type, known or future, is `opaque<1..2^16-1>` (RFC 6066 §3).
        let mut name = list.sub_u16()?;
        if name_type != NAME_TYPE_HOST_NAME {
            name.skip_rest()?;
            continue;
        }
        let scratch = scratch.take().ok_or(Malformed::DuplicateHostName)?;
        if name.is_empty() {
            return Err(Malformed::EmptyHostName);
        }
        host_name = Some(RawName::read(&mut name, scratch)?);
    }
    Ok(host_name)
}
