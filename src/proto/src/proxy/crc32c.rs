//! CRC32C (Castagnoli, RFC 4960 appendix B), for the v2 CRC32C TLV.
//!
//! A byte-at-a-time table: headers are tens of bytes, so a faster kernel would not show.

const POLY: u32 = 0x82F6_3B78; // 0x1EDC6F41 bit-reversed

const TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 == 1 { (c >> 1) ^ POLY } else { c >> 1 };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// A running CRC32C.
pub(super) struct Crc32c(u32);

impl Crc32c {
    pub(super) fn new() -> Self {
        Self(!0)
    }

    pub(super) fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = TABLE[usize::from((self.0 as u8) ^ b)] ^ (self.0 >> 8);
        }
    }

    pub(super) fn finish(&self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Crc32c;

    fn crc(bytes: &[u8]) -> u32 {
        let mut c = Crc32c::new();
        c.update(bytes);
        c.finish()
    }

    #[test]
    fn known_answers() {
        // The CRC catalogue's check value, and RFC 3720 B.4's 32 zero bytes.
        assert_eq!(crc(b"123456789"), 0xE306_9283);
        assert_eq!(crc(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc(&[0xFFu8; 32]), 0x62A8_AB43);
        assert_eq!(crc(b""), 0);
    }

    #[test]
    fn split_updates_match_one_update() {
        let data: Vec<u8> = (0..=255).collect();
        let mut c = Crc32c::new();
        c.update(&data[..100]);
        c.update(&data[100..]);
        assert_eq!(c.finish(), crc(&data));
    }
}
