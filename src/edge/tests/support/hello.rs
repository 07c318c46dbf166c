//! Synthetic ClientHellos (like the ones SniTun's vectors use), with knobs for size and
//! fragmentation.

/// A minimal TLS 1.2 ClientHello with `sni` (none if `None`) and `pad` bytes of padding
/// extension, as one record.
pub fn client_hello(sni: Option<&str>, pad: usize) -> Vec<u8> {
    let mut ext = Vec::new();
    if let Some(name) = sni {
        let name = name.as_bytes();
        let mut list = vec![0u8];
        list.extend_from_slice(&(name.len() as u16).to_be_bytes());
        list.extend_from_slice(name);
        let mut data = (list.len() as u16).to_be_bytes().to_vec();
        data.extend_from_slice(&list);
        ext.extend_from_slice(&0u16.to_be_bytes());
        ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
        ext.extend_from_slice(&data);
    }
    if pad > 0 {
        ext.extend_from_slice(&21u16.to_be_bytes());
        ext.extend_from_slice(&(pad as u16).to_be_bytes());
        ext.extend(std::iter::repeat_n(0u8, pad));
    }
    let mut body = vec![0x03, 0x03];
    body.extend(0..32u8);
    body.push(0);
    body.extend_from_slice(&[0x00, 0x02, 0x13, 0x01, 0x01, 0x00]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![0x01];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend_from_slice(&body);
    records(&hs, 16384)
}

/// Handshake bytes cut into records of at most `max` bytes.
pub fn records(hs: &[u8], max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in hs.chunks(max) {
        out.extend_from_slice(&[0x16, 0x03, 0x01]);
        out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// A ClientHello whose handshake message is exactly `len` bytes (4-byte header included),
/// in records of at most 16 KiB.
pub fn hello_of_len(sni: &str, len: usize) -> Vec<u8> {
    let bare = unrecord(&client_hello(Some(sni), 0)).len();
    let hello = client_hello(Some(sni), len - bare - 4);
    assert_eq!(unrecord(&hello).len(), len, "hello sizing");
    hello
}

/// The handshake bytes of a record sequence.
pub fn unrecord(recs: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = recs;
    while rest.len() >= 5 {
        let n = u16::from_be_bytes([rest[3], rest[4]]) as usize;
        out.extend_from_slice(&rest[5..5 + n]);
        rest = &rest[5 + n..];
    }
    out
}
