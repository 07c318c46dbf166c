//! The recorded SniTun transcripts in `testdata/snitun/`, for tests.

use serde::Deserialize;

use crate::crypto::CipherKind;
use crate::version::ProtocolVersion;

#[derive(Debug, Deserialize)]
pub(crate) struct Vector {
    #[serde(skip)]
    pub(crate) name: &'static str,
    pub(crate) fernet_key: String,
    pub(crate) fernet_time: u64,
    pub(crate) fernet_iv: String,
    pub(crate) token_payload_json: String,
    pub(crate) token: String,
    pub(crate) aes_key: String,
    pub(crate) aes_iv: String,
    pub(crate) cipher: String,
    pub(crate) protocol_version: u8,
    #[allow(dead_code)] // used by the multiplexer transcript tests
    pub(crate) client_hello: String,
    #[allow(dead_code)]
    pub(crate) public_reply: String,
    pub(crate) c2s: String,
    pub(crate) s2c: String,
}

impl Vector {
    pub(crate) fn cipher(&self) -> CipherKind {
        CipherKind::from_name(&self.cipher).expect("known cipher")
    }

    pub(crate) fn version(&self) -> ProtocolVersion {
        ProtocolVersion::from_number(self.protocol_version.into()).expect("known version")
    }

    pub(crate) fn key(&self) -> [u8; 32] {
        hex::decode(&self.aes_key).unwrap().try_into().unwrap()
    }

    pub(crate) fn iv(&self) -> [u8; 16] {
        hex::decode(&self.aes_iv).unwrap().try_into().unwrap()
    }
}

macro_rules! vectors {
    ($($file:literal),* $(,)?) => {
        vec![$({
            let mut v: Vector = serde_json::from_str(include_str!(concat!(
                "../testdata/snitun/", $file, ".json"
            )))
            .expect($file);
            v.name = $file;
            v
        }),*]
    };
}

/// Every recorded transcript.
pub(crate) fn all() -> Vec<Vector> {
    vectors![
        "release-0.40.0_v0_aes-cbc",
        "release-0.47.0_v0_aes-cbc",
        "release-0.47.0_v0_aes-gcm",
        "release-0.47.0_v1_aes-cbc",
        "release-0.47.0_v2_aes-cbc",
        "release-0.47.0_v2_aes-gcm",
        "release-0.47.0_v2_aes-gcm-siv",
    ]
}
