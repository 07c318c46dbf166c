//! A ClientHello encoder for tests: builds hellos field by field, including broken ones,
//! and cuts handshake messages into TLS records.

pub(super) const HANDSHAKE: u8 = 0x16;
pub(super) const APPLICATION_DATA: u8 = 0x17;
pub(super) const CLIENT_HELLO: u8 = 1;
pub(super) const SERVER_NAME: u16 = 0;
pub(super) const HOST_NAME: u8 = 0;

/// Every field of a ClientHello, as raw as the tests need them.
#[derive(Debug, Clone)]
pub(super) struct HelloSpec {
    pub(super) legacy_version: u16,
    pub(super) session_id: Vec<u8>,
    /// Raw bytes (not suites) so that an odd length can be written.
    pub(super) cipher_suites: Vec<u8>,
    pub(super) compression_methods: Vec<u8>,
    /// `None`: the hello ends after the compression methods (TLS 1.0 style).
    pub(super) extensions: Option<Vec<(u16, Vec<u8>)>>,
    /// Bytes written after the extensions block, inside the message.
    pub(super) trailing: Vec<u8>,
}

impl HelloSpec {
    /// A plain TLS 1.3-looking hello, with an SNI extension when `name` is given.
    pub(super) fn new(name: Option<&str>) -> Self {
        let mut extensions = vec![
            (0x000a, u16_prefixed(&[0x00, 0x1d, 0x00, 0x17])), // supported_groups
            (0x002b, vec![0x02, 0x03, 0x04]),                  // supported_versions
        ];
        if let Some(name) = name {
            extensions.insert(1, (SERVER_NAME, sni_ext(&[(HOST_NAME, name.as_bytes())])));
        }
        Self {
            legacy_version: 0x0303,
            session_id: vec![0x5a; 32],
            cipher_suites: suites(&[0x1301, 0x1302, 0x1303]),
            compression_methods: vec![0],
            extensions: Some(extensions),
            trailing: Vec::new(),
        }
    }

    pub(super) fn body(&self) -> Vec<u8> {
        let mut out = self.legacy_version.to_be_bytes().to_vec();
        out.extend_from_slice(&[0x11; 32]);
        out.extend_from_slice(&u8_prefixed(&self.session_id));
        out.extend_from_slice(&u16_prefixed(&self.cipher_suites));
        out.extend_from_slice(&u8_prefixed(&self.compression_methods));
        if let Some(extensions) = &self.extensions {
            let mut block = Vec::new();
            for (kind, data) in extensions {
                block.extend_from_slice(&kind.to_be_bytes());
                block.extend_from_slice(&u16_prefixed(data));
            }
            out.extend_from_slice(&u16_prefixed(&block));
        }
        out.extend_from_slice(&self.trailing);
        out
    }

    /// The whole handshake message, header included.
    pub(super) fn message(&self) -> Vec<u8> {
        handshake(CLIENT_HELLO, &self.body())
    }

    /// The message in one TLS 1.0 record, as most clients send it.
    pub(super) fn record(&self) -> Vec<u8> {
        record(HANDSHAKE, 0x0301, &self.message())
    }
}

pub(super) fn suites(suites: &[u16]) -> Vec<u8> {
    suites.iter().flat_map(|s| s.to_be_bytes()).collect()
}

pub(super) fn u8_prefixed(data: &[u8]) -> Vec<u8> {
    let mut out = vec![u8::try_from(data.len()).expect("test data fits a u8 length")];
    out.extend_from_slice(data);
    out
}

pub(super) fn u16_prefixed(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).expect("test data fits a u16 length");
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(data);
    out
}

/// server_name extension data with the given `(name_type, name)` entries.
pub(super) fn sni_ext(entries: &[(u8, &[u8])]) -> Vec<u8> {
    let mut list = Vec::new();
    for (kind, name) in entries {
        list.push(*kind);
        list.extend_from_slice(&u16_prefixed(name));
    }
    u16_prefixed(&list)
}

pub(super) fn handshake(kind: u8, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len()).expect("test body fits a u24 length");
    let mut out = vec![kind];
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.extend_from_slice(body);
    out
}

pub(super) fn record(kind: u8, version: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(
        &u16::try_from(payload.len())
            .expect("record fits")
            .to_be_bytes(),
    );
    out.extend_from_slice(payload);
    out
}

/// Cuts `message` into handshake records whose payload sizes cycle through `sizes`.
pub(super) fn fragment(message: &[u8], version: u16, sizes: &[usize]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = message;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (head, tail) = rest.split_at(size.clamp(1, 16384).min(rest.len()));
        out.extend_from_slice(&record(HANDSHAKE, version, head));
        rest = tail;
    }
    out
}

/// The handshake bytes and first record version of a run of records (the captures).
pub(super) fn unframe(mut records: &[u8]) -> (u16, Vec<u8>) {
    let version = u16::from_be_bytes([records[1], records[2]]);
    let mut message = Vec::new();
    while !records.is_empty() {
        let len = usize::from(u16::from_be_bytes([records[3], records[4]]));
        message.extend_from_slice(&records[5..5 + len]);
        records = &records[5 + len..];
    }
    (version, message)
}
