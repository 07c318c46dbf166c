//! Accounts and sign-in: adding, listing and disabling accounts (the operator's CLI), token
//! sets for an account, refresh with rotation, and checking a bearer token on every API call.

pub mod jwt;
mod password;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

pub use jwt::{Claims, JwtError, JwtKeys, KeyFileError, TokenUse};
pub use password::{MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};

use crate::store::{
    Account, Actor, NewAccount, RefreshRecord, Rotation, SqliteStore, Store, StoreError,
};

/// The longest email address (RFC 5321's path limit).
pub const MAX_EMAIL_LEN: usize = 254;
/// The subscription end every new account gets: billing is not the master's business yet,
/// and Home Assistant stops its Remote UI when `custom:sub-exp` is more than 7 days past.
pub const DEFAULT_SUBSCRIPTION_EXPIRES: &str = "2099-12-31";
/// How long id and access tokens last unless configured.
pub const DEFAULT_SESSION_VALIDITY: Duration = Duration::from_secs(3600);
/// How long a refresh token lasts.
pub const DEFAULT_REFRESH_VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);

/// Why an account operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// Not an email address the master accepts.
    #[error("{0:?} is not an email address")]
    BadEmail(String),
    /// Too short or too long.
    #[error("the password must be {MIN_PASSWORD_LEN} to {MAX_PASSWORD_LEN} bytes")]
    BadPassword,
    /// The email or password does not match an account.
    #[error("unknown account or wrong password")]
    WrongCredentials,
    /// The account is disabled.
    #[error("the account is disabled")]
    Disabled,
    /// A bearer or refresh token was refused.
    #[error(transparent)]
    Token(#[from] JwtError),
    /// A refresh token was presented a second time: its family is revoked.
    #[error("the refresh token was used before; sign in again")]
    Replayed,
    /// The signing key cannot be had.
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    /// Hashing failed (it does not, short of memory).
    #[error("password hashing: {0}")]
    Hash(String),
    /// The store.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The three tokens Home Assistant keeps in `.cloud/<mode>_auth.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenSet {
    /// The bearer of every API call.
    pub id_token: String,
    /// Its `exp` is what Home Assistant checks before a call.
    pub access_token: String,
    /// Exchanged at `/auth/refresh`, once.
    pub refresh_token: String,
}

/// How long each kind of token lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// Id and access tokens.
    pub session: Duration,
    /// Refresh tokens.
    pub refresh: Duration,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            session: DEFAULT_SESSION_VALIDITY,
            refresh: DEFAULT_REFRESH_VALIDITY,
        }
    }
}

/// The account service over a store and a signing key.
#[derive(Debug, Clone)]
pub struct Accounts {
    store: Arc<dyn Store>,
    keys: JwtKeys,
    lifetimes: Lifetimes,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Runs one argon2 hash or verification on the blocking pool, at most one per CPU at a time:
/// each holds about 19 MiB while it runs, and sign-in is open to anyone, so a burst of
/// attempts waits its turn instead of growing the pool to hundreds of threads.
async fn hashing<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AccountError> {
    static PERMITS: std::sync::LazyLock<tokio::sync::Semaphore> = std::sync::LazyLock::new(|| {
        tokio::sync::Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    });
    let _permit = PERMITS
        .acquire()
        .await
        .map_err(|e| AccountError::Hash(e.to_string()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// A random id: 16 bytes from the OS, hex.
pub(crate) fn random_id() -> String {
    let mut b = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut b);
    hex::encode(b)
}

/// A random password (20 letters and digits), for demo and bootstrap accounts.
pub fn random_password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rngs::OsRng;
    (0..20)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// Lower-cases and checks an email address: one `@`, both sides non-empty, no spaces or
/// control characters, a dot in the domain.
pub fn normalize_email(raw: &str) -> Result<String, AccountError> {
    let email = raw.trim().to_lowercase();
    let bad = || AccountError::BadEmail(raw.to_owned());
    if email.len() > MAX_EMAIL_LEN || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = email.split_once('@').ok_or_else(bad)?;
    if local.is_empty() || domain.contains('@') || !domain.contains('.') || domain.starts_with('.')
    {
        return Err(bad());
    }
    Ok(email)
}

impl Accounts {
    /// The accounts in `state_dir` (created if missing, 0700): its SQLite store and signing key.
    pub async fn open(state_dir: &Path, lifetimes: Lifetimes) -> Result<Self, AccountError> {
        create_state_dir(state_dir).map_err(|why| KeyFileError {
            path: state_dir.to_owned(),
            why,
        })?;
        let store = SqliteStore::open(state_dir).await?;
        let keys = JwtKeys::load_or_create(state_dir)?;
        Ok(Self::new(Arc::new(store), keys, lifetimes))
    }

    /// The service over `store`, signing with `keys`.
    pub fn new(store: Arc<dyn Store>, keys: JwtKeys, lifetimes: Lifetimes) -> Self {
        Self {
            store,
            keys,
            lifetimes,
        }
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Adds an account with `password` (hashed with argon2 off the async threads).
    pub async fn add(
        &self,
        email: &str,
        password: &str,
        actor: &str,
    ) -> Result<Account, AccountError> {
        let email = normalize_email(email)?;
        if !(MIN_PASSWORD_LEN..=MAX_PASSWORD_LEN).contains(&password.len()) {
            return Err(AccountError::BadPassword);
        }
        let password = password.to_owned();
        let password_hash = hashing(move || password::hash(&password))
            .await?
            .map_err(AccountError::Hash)?;
        let new = NewAccount {
            id: random_id(),
            email,
            password_hash,
            subscription_expires: DEFAULT_SUBSCRIPTION_EXPIRES.to_owned(),
        };
        let by = Actor {
            who: actor,
            at: unix(SystemTime::now()),
        };
        Ok(self.store.add_account(new, by).await?)
    }

    /// Every account.
    pub async fn list(&self) -> Result<Vec<Account>, AccountError> {
        Ok(self.store.accounts().await?)
    }

    /// Disables the account: its tokens are refused from now on, its refresh tokens revoked.
    pub async fn disable(&self, email: &str, actor: &str) -> Result<Account, AccountError> {
        let email = normalize_email(email)?;
        let by = Actor {
            who: actor,
            at: unix(SystemTime::now()),
        };
        Ok(self.store.disable_account(&email, by).await?)
    }

    /// The account, if `password` is its password (for the sign-in page to come).
    pub async fn check_password(
        &self,
        email: &str,
        password: &str,
    ) -> Result<Account, AccountError> {
        if password.len() > MAX_PASSWORD_LEN {
            return Err(AccountError::WrongCredentials);
        }
        let account = match normalize_email(email) {
            Ok(email) => self.store.account_by_email(&email).await?,
            Err(_) => None,
        };
        // An unknown account costs the same hash as a known one, so that the time taken does
        // not tell which emails have accounts.
        let stored = account
            .as_ref()
            .map_or_else(|| password::decoy().to_owned(), |a| a.password_hash.clone());
        let password = password.to_owned();
        let ok = hashing(move || password::verify(&password, &stored)).await?;
        let account = account
            .filter(|_| ok)
            .ok_or(AccountError::WrongCredentials)?;
        if account.disabled {
            return Err(AccountError::Disabled);
        }
        Ok(account)
    }

    /// A fresh token set for `account` (after a sign-in).
    pub async fn token_set(&self, account: &Account) -> Result<TokenSet, AccountError> {
        let (set, refresh) = self.sign_set(account, &random_id(), None, SystemTime::now());
        self.store.add_refresh(refresh).await?;
        Ok(set)
    }

    /// A fresh token set for the account with this email (`sluice master token`);
    /// `session` overrides how long its id and access tokens last.
    pub async fn token_set_for(
        &self,
        email: &str,
        session: Option<Duration>,
    ) -> Result<TokenSet, AccountError> {
        let email = normalize_email(email)?;
        let account = self
            .store
            .account_by_email(&email)
            .await?
            .ok_or_else(|| StoreError::NoAccount(email.clone()))?;
        if account.disabled {
            return Err(AccountError::Disabled);
        }
        let (set, refresh) = self.sign_set(&account, &random_id(), session, SystemTime::now());
        self.store.add_refresh(refresh).await?;
        Ok(set)
    }

    /// Signs a token set for `account` at `now`, its refresh token in `family` (returned for
    /// the caller to store, in the transaction of its choice).
    fn sign_set(
        &self,
        account: &Account,
        family: &str,
        session: Option<Duration>,
        now: SystemTime,
    ) -> (TokenSet, RefreshRecord) {
        let iat = unix(now);
        let exp = iat.saturating_add(session.unwrap_or(self.lifetimes.session).as_secs());
        let base = |token_use, exp| Claims {
            sub: account.id.clone(),
            iss: jwt::ISSUER.to_owned(),
            iat,
            exp,
            jti: random_id(),
            token_use,
            email: None,
            username: None,
            subscription_expires: None,
            family: None,
        };
        let id = Claims {
            email: Some(account.email.clone()),
            username: Some(account.id.clone()),
            subscription_expires: Some(account.subscription_expires.clone()),
            ..base(TokenUse::Id, exp)
        };
        let refresh = Claims {
            family: Some(family.to_owned()),
            ..base(
                TokenUse::Refresh,
                iat.saturating_add(self.lifetimes.refresh.as_secs()),
            )
        };
        let record = RefreshRecord {
            jti: refresh.jti.clone(),
            account_id: account.id.clone(),
            family: family.to_owned(),
            expires_at: refresh.exp,
        };
        let set = TokenSet {
            id_token: self.keys.sign(&id),
            access_token: self.keys.sign(&base(TokenUse::Access, exp)),
            refresh_token: self.keys.sign(&refresh),
        };
        (set, record)
    }

    /// Exchanges a refresh token for a new set. Each refresh token works once: a second use
    /// means a copy leaked, so the whole family (every token rotated from the same sign-in) is
    /// revoked and the caller must sign in again.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenSet, AccountError> {
        let claims = self.keys.verify(refresh_token, TokenUse::Refresh)?;
        let account = self.live_account(&claims.sub).await?;
        let now = SystemTime::now();
        let family = claims.family.clone().unwrap_or_default();
        let (set, next) = self.sign_set(&account, &family, None, now);
        match self
            .store
            .rotate_refresh(&claims.jti, next, unix(now))
            .await?
        {
            Rotation::Rotated => Ok(set),
            Rotation::Replayed => {
                // The one security event here: someone holds a refresh token already used.
                tracing::warn!(
                    account = %account.email,
                    "a used refresh token was presented again; its whole family is revoked"
                );
                Err(AccountError::Replayed)
            }
            Rotation::Unknown => Err(AccountError::Token(JwtError::Invalid)),
        }
    }

    /// The account a bearer token of `used_for` belongs to, if the token verifies and the
    /// account exists and is enabled.
    pub async fn authenticate(
        &self,
        token: &str,
        used_for: TokenUse,
    ) -> Result<Account, AccountError> {
        let claims = self.keys.verify(token, used_for)?;
        self.live_account(&claims.sub).await
    }

    async fn live_account(&self, id: &str) -> Result<Account, AccountError> {
        let account = self
            .store
            .account_by_id(id)
            .await?
            .ok_or(AccountError::Token(JwtError::Invalid))?;
        if account.disabled {
            return Err(AccountError::Disabled);
        }
        Ok(account)
    }

    /// Signs a token set at `now` without recording its refresh token (tests of expiry).
    #[cfg(test)]
    pub(crate) fn sign_unrecorded(&self, account: &Account, now: SystemTime) -> TokenSet {
        self.sign_set(account, "unrecorded", None, now).0
    }
}

/// Creates the state directory, owner-only, if it is missing.
pub(crate) fn create_state_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
