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
const MAX_RAW_NAME_LEN: usize = MAX_HOSTNAME_LEN + 1;

/// A `host_name` as sent, held on the stack until the whole hello has been checked.
///
/// A name longer than any host name is not kept, only its length.
#[derive(Debug)]
pub(super) struct RawName {
    bytes: [u8; MAX_RAW_NAME_LEN],
    len: usize,
}

impl RawName {
    fn read(r: &mut Reader<'_, '_>) -> Result<Self, Malformed> {
        let len = r.left();
        let mut bytes = [0; MAX_RAW_NAME_LEN];
        match bytes.get_mut(..len) {
            Some(slot) => r.copy_to(slot)?,
            None => r.skip_rest()?,
        }
        Ok(Self { bytes, len })
    }

    /// Validates and normalizes the name.
    pub(super) fn to_hostname(&self) -> Result<Hostname, HostnameError> {
        match self.bytes.get(..self.len) {
            Some(name) => Hostname::parse(name),
            None => Err(HostnameError::TooLong),
        }
    }
}

/// Decodes the handshake message carried by `records` (whole records, exactly those
/// `records::locate` found) and returns its `host_name`, if any.
pub(super) fn parse(records: &[u8]) -> Result<Option<RawName>, Malformed> {
    let mut fragments = Fragments::new(records);
    let mut stream = Reader::new(&mut fragments);
    // Type and length were checked by `records::locate`; the length still bounds the body.
    stream.u8()?;
    let len = stream.u24()?;
    let mut body = stream.sub(len)?;
    let name = client_hello(&mut body)?;
    body.finish()?;
    Ok(name)
}

fn client_hello(body: &mut Reader<'_, '_>) -> Result<Option<RawName>, Malformed> {
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
    let mut seen_server_name = false;
    while !extensions.is_empty() {
        let extension_type = extensions.u16()?;
        let mut data = extensions.sub_u16()?;
        if extension_type == EXTENSION_SERVER_NAME {
            if seen_server_name {
                return Err(Malformed::DuplicateServerName);
            }
            seen_server_name = true;
            server_name = server_name_list(&mut data)?;
            data.finish()?;
        } else {
            // GREASE and every other extension: not ours to judge.
            data.skip_rest()?;
        }
    }
    Ok(server_name)
}

/// Reads a ClientHello's server_name extension data and returns its `host_name`.
fn server_name_list(data: &mut Reader<'_, '_>) -> Result<Option<RawName>, Malformed> {
    // Only a server's answer has an empty extension; the client's list is `<1..2^16-1>`.
    if data.is_empty() {
        return Err(Malformed::EmptyServerNameList);
    }
    let mut list = data.sub_u16()?;
    if list.is_empty() {
        return Err(Malformed::EmptyServerNameList);
    }
    let mut host_name = None;
    while !list.is_empty() {
        let name_type = list.u8()?;
        // Every name type, known or future, is `opaque<1..2^16-1>` (RFC 6066 §3).
        let mut name = list.sub_u16()?;
        if name_type != NAME_TYPE_HOST_NAME {
            name.skip_rest()?;
            continue;
        }
        if host_name.is_some() {
            return Err(Malformed::DuplicateHostName);
        }
        if name.is_empty() {
            return Err(Malformed::EmptyHostName);
        }
        host_name = Some(RawName::read(&mut name)?);
    }
    Ok(host_name)
}
