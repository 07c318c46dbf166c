//! Which multiplexer protocol version and tunnel cipher a token gets.
//!
//! The version is the *peer's*, in both places (SniTun's `Multiplexer(peer_protocol_version)`):
//! the one in the Fernet token tells the edge what the client speaks, the one in the
//! `snitun_token` reply tells the client what the edge speaks. The v2 NEW format is chosen by
//! the edge from the token and read by the client from the reply, so the two must be the same
//! number: `min(client, edge)`.
//!
//! Home Assistant's client does not say what its library speaks, so it is judged from the
//! `User-Agent` (`HomeAssistant/<version> aiohttp/... Python/...`): hass-nabucasa before 2.3.0
//! ignores the reply's version and assumes 0, so such a client must get at most 1 (its snitun
//! knows PAUSE/RESUME) and very old ones 0. Which Home Assistant release ships which
//! hass-nabucasa is the operator's table ([`HaThresholds`]); a Home Assistant version below
//! every threshold, or none at all, gets 0, which every SniTun client speaks. Home Assistant
//! always gets aes-cbc: it never passes a cipher to snitun, and it reuses its key and IV
//! across reconnects, which would make aes-gcm unsafe even if it could.
//!
//! Any other client (Sluice's own connector) says what it wants in the request
//! (`protocol_version`, its highest; `cipher`) and gets the lower of that and the edge's. It
//! may not have aes-gcm: the key comes back with the token and may be used on more than one
//! connection, and aes-gcm's counter nonces restart on each (aes-gcm-siv is safe).

use std::fmt;
use std::str::FromStr;

use sluice_proto::crypto::CipherKind;
use sluice_proto::version::ProtocolVersion;

/// A Home Assistant core version, `YEAR.MONTH.PATCH`; a pre-release suffix (`b3`, `.dev...`) is
/// read as the release it precedes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HaVersion(pub u32, pub u32, pub u32);

impl FromStr for HaVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let mut parts = s.split('.');
        let mut number = |required: bool| -> Result<u32, String> {
            match parts.next() {
                None if !required => Ok(0),
                None => Err(format!("{s:?} is not a Home Assistant version")),
                Some(p) => {
                    let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
                    digits
                        .parse()
                        .map_err(|_| format!("{s:?} is not a Home Assistant version"))
                }
            }
        };
        Ok(Self(number(true)?, number(true)?, number(false)?))
    }
}

impl fmt::Display for HaVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// From which Home Assistant release on a client speaks protocol 1 (its hass-nabucasa's snitun
/// has PAUSE/RESUME) and 2 (hass-nabucasa 2.3.0 or later, which honours the reply's version).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HaThresholds {
    /// The first release that gets protocol 1; none: no Home Assistant gets 1.
    pub v1_from: Option<HaVersion>,
    /// The first release that gets protocol 2; none: no Home Assistant gets 2.
    pub v2_from: Option<HaVersion>,
}

/// Who asks for a token, judged from the `User-Agent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Client {
    /// Home Assistant's cloud client, with its core version if the agent names a readable one.
    HomeAssistant(Option<HaVersion>),
    /// Anything else (Sluice's connector): it says what it wants.
    Other,
}

impl Client {
    /// Reads the `User-Agent` header's value.
    pub fn from_user_agent(agent: Option<&str>) -> Self {
        let Some(agent) = agent else {
            return Self::Other;
        };
        agent
            .split_whitespace()
            .find_map(|product| product.strip_prefix("HomeAssistant/"))
            .map_or(Self::Other, |v| Self::HomeAssistant(v.parse().ok()))
    }
}

/// What a non-HA client asked for in its request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Asked {
    /// The highest protocol version it speaks (none: 0).
    pub protocol_version: Option<u64>,
    /// The cipher it wants (none: aes-cbc).
    pub cipher: Option<CipherKind>,
}

/// What the token (and the reply) will say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelTerms {
    /// The protocol version, the same in token and reply.
    pub version: ProtocolVersion,
    /// The cipher.
    pub cipher: CipherKind,
}

/// A request the rule refuses (the client's doing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TermsError {
    /// aes-gcm with a key that may be reused.
    #[error(
        "aes-gcm is not offered: its nonces repeat when a key is used on a second connection; ask for aes-gcm-siv"
    )]
    GcmKeyReuse,
}

/// The rule: see the module doc.
pub fn decide(
    client: Client,
    asked: Asked,
    edge_max: ProtocolVersion,
    ha: HaThresholds,
) -> Result<TunnelTerms, TermsError> {
    let (client_max, cipher) = match client {
        Client::HomeAssistant(version) => {
            let at_least =
                |t: Option<HaVersion>| matches!((version, t), (Some(v), Some(t)) if v >= t);
            let max = if at_least(ha.v2_from) {
                ProtocolVersion::V2
            } else if at_least(ha.v1_from) {
                ProtocolVersion::V1
            } else {
                ProtocolVersion::V0
            };
            (max, CipherKind::AesCbc)
        }
        Client::Other => {
            let max = match asked.protocol_version.unwrap_or(0) {
                0 => ProtocolVersion::V0,
                1 => ProtocolVersion::V1,
                _ => ProtocolVersion::LATEST,
            };
            let cipher = asked.cipher.unwrap_or(CipherKind::AesCbc);
            if cipher == CipherKind::AesGcm {
                return Err(TermsError::GcmKeyReuse);
            }
            (max, cipher)
        }
    };
    Ok(TunnelTerms {
        version: client_max.min(edge_max),
        cipher,
    })
}

#[cfg(test)]
mod tests;
