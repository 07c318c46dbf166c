//! Issuing tokens as a session master does: fresh tunnel keys, whole-second validity, the
//! first Fernet key mints. Every minting site (the CLI, the demo, the load generator, the test
//! kits, the session master) goes through [`Issuer`], so they cannot drift apart.

use std::time::{Duration, SystemTime};

use super::{FernetKey, TokenClaims, unix_seconds};
use crate::Hostname;
use crate::crypto::{CipherKind, IV_LEN, KEY_LEN};
use crate::limits::MAX_ALIASES;
use crate::random::Random;
use crate::version::ProtocolVersion;

/// How long a token is valid when nothing else is asked.
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(3600);

/// What a token should grant.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRequest {
    /// The primary host name.
    pub hostname: Hostname,
    /// Further names routed to the same tunnel (at most [`MAX_ALIASES`]).
    pub aliases: Vec<Hostname>,
    /// Multiplexer protocol version (default 2; SniTun 0.40 servers speak only 0).
    pub protocol_version: ProtocolVersion,
    /// Tunnel cipher (default aes-cbc, what every SniTun peer speaks).
    pub cipher: CipherKind,
    /// How long from `now` the token is valid.
    pub valid_for: Duration,
}

impl TokenRequest {
    /// A request for `hostname` with the defaults.
    pub fn new(hostname: Hostname) -> Self {
        Self {
            hostname,
            aliases: Vec::new(),
            protocol_version: ProtocolVersion::V2,
            cipher: CipherKind::AesCbc,
            valid_for: DEFAULT_VALIDITY,
        }
    }
}

/// A minted token and what it grants.
#[derive(Debug, Clone, PartialEq)]
pub struct Issued {
    /// The token, as the connector sends it.
    pub token: String,
    /// Its claims (with the tunnel's AES key and IV: a secret for the connector alone).
    pub claims: TokenClaims,
}

/// Why a token cannot be issued; the caller asked for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// More aliases than a token may carry.
    #[error("{0} aliases, more than the {MAX_ALIASES} a token may carry")]
    TooManyAliases(usize),
    /// A zero validity.
    #[error("the validity must be positive")]
    NoValidity,
    /// No key to mint with.
    #[error("no Fernet key to mint with")]
    NoKey,
}

/// Mints tokens with the first of its keys (the others only verify, during a rotation).
#[derive(Debug, Clone)]
pub struct Issuer {
    key: FernetKey,
}

impl Issuer {
    /// An issuer minting with `keys[0]`.
    pub fn new(keys: &[FernetKey]) -> Result<Self, IssueError> {
        let key = keys.first().ok_or(IssueError::NoKey)?.clone();
        Ok(Self { key })
    }

    /// Mints a token for `request` at `now`: a fresh AES key and IV from `rng`, valid until
    /// `now + valid_for`, in whole seconds (as Nabu Casa's API writes them).
    pub fn issue(
        &self,
        request: &TokenRequest,
        now: SystemTime,
        rng: &mut dyn Random,
    ) -> Result<Issued, IssueError> {
        let mut aes_key = [0; KEY_LEN];
        let mut aes_iv = [0; IV_LEN];
        rng.fill(&mut aes_key);
        rng.fill(&mut aes_iv);
        self.issue_with_keys(request, aes_key, aes_iv, now, rng)
    }

    /// Mints a token for `request` around tunnel keys the client chose: Home Assistant's
    /// cloud client generates its AES key and IV itself and sends them with its token request.
    /// `rng` draws only the Fernet IV.
    pub fn issue_with_keys(
        &self,
        request: &TokenRequest,
        aes_key: [u8; KEY_LEN],
        aes_iv: [u8; IV_LEN],
        now: SystemTime,
        rng: &mut dyn Random,
    ) -> Result<Issued, IssueError> {
        if request.aliases.len() > MAX_ALIASES {
            return Err(IssueError::TooManyAliases(request.aliases.len()));
        }
        if request.valid_for.is_zero() {
            return Err(IssueError::NoValidity);
        }
        let now_s = unix_seconds(now).floor();
        let claims = TokenClaims {
            valid: (now_s + request.valid_for.as_secs_f64()).floor(),
            hostname: request.hostname.clone(),
            aliases: request.aliases.clone(),
            aes_key,
            aes_iv,
            protocol_version: request.protocol_version,
            cipher: request.cipher,
        };
        let token = claims.mint(&self.key, now_s as u64, rng);
        Ok(Issued { token, claims })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::verify_token;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn host(s: &str) -> Hostname {
        Hostname::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn issued_tokens_verify_with_the_claims_asked_for() {
        let keys = [
            FernetKey::generate(&mut StdRng::seed_from_u64(1)),
            FernetKey::generate(&mut StdRng::seed_from_u64(2)),
        ];
        let issuer = Issuer::new(&keys).unwrap();
        let mut req = TokenRequest::new(host("a.example.test"));
        req.aliases = vec![host("b.example.test")];
        req.protocol_version = ProtocolVersion::V1;
        req.cipher = CipherKind::AesGcmSiv;
        req.valid_for = Duration::from_secs(90);
        let now = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_700);
        let issued = issuer
            .issue(&req, now, &mut StdRng::seed_from_u64(3))
            .unwrap();
        assert!(issued.token.starts_with("gA"));
        assert_eq!(issued.claims.valid, 1_700_000_090.0, "whole seconds");
        let got = verify_token(issued.token.as_bytes(), &keys[1..=1], now);
        assert!(got.is_err(), "the second key does not mint");
        let got = verify_token(issued.token.as_bytes(), &keys, now).unwrap();
        assert_eq!(got, issued.claims);
        let other = issuer
            .issue(&req, now, &mut StdRng::seed_from_u64(4))
            .unwrap();
        assert_ne!(
            other.claims.aes_key, issued.claims.aes_key,
            "fresh keys each time"
        );
    }

    #[test]
    fn client_chosen_keys_go_into_the_token() {
        let key = FernetKey::generate(&mut StdRng::seed_from_u64(1));
        let issuer = Issuer::new(std::slice::from_ref(&key)).unwrap();
        let req = TokenRequest::new(host("a.example.test"));
        let now = SystemTime::now();
        let issued = issuer
            .issue_with_keys(&req, [7; 32], [9; 16], now, &mut StdRng::seed_from_u64(2))
            .unwrap();
        let got = verify_token(issued.token.as_bytes(), &[key], now).unwrap();
        assert_eq!((got.aes_key, got.aes_iv), ([7; 32], [9; 16]));
    }

    #[test]
    fn bad_requests_are_refused() {
        let key = FernetKey::generate(&mut StdRng::seed_from_u64(1));
        assert_eq!(Issuer::new(&[]).unwrap_err(), IssueError::NoKey);
        let issuer = Issuer::new(&[key]).unwrap();
        let mut req = TokenRequest::new(host("a.example.test"));
        req.valid_for = Duration::ZERO;
        let now = SystemTime::now();
        let rng = &mut StdRng::seed_from_u64(1);
        assert_eq!(issuer.issue(&req, now, rng), Err(IssueError::NoValidity));
        req.valid_for = DEFAULT_VALIDITY;
        req.aliases = (0..=MAX_ALIASES)
            .map(|i| host(&format!("h{i}.example.test")))
            .collect();
        assert_eq!(
            issuer.issue(&req, now, rng),
            Err(IssueError::TooManyAliases(MAX_ALIASES + 1))
        );
    }
}
