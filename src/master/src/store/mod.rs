//! What the master keeps: accounts, their instances, refresh tokens and an audit log, behind
//! one object-safe trait so that the backend is chosen at run time. [`SqliteStore`] is the
//! embedded default; PostgreSQL (for several masters behind a load balancer) is to implement
//! the same trait with its own migrations.
//!
//! Every method that changes something runs in one transaction, and the audit entry of a
//! change is written in the same transaction as the change: what a caller was told is done is
//! on disk (SQLite runs with `synchronous = FULL`), and there is no change without its entry.
//! Times are Unix seconds.

mod sqlite;

pub use sqlite::SqliteStore;

use async_trait::async_trait;

/// Why the store could not answer. Conflicts and absences the caller asked about are
/// variants of their own; everything else is the database's.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An account with this email exists already.
    #[error("an account for {0} exists already")]
    AccountExists(String),
    /// No account matches.
    #[error("no account {0}")]
    NoAccount(String),
    /// The instance name is taken (by another account): draw another.
    #[error("the instance name {0} is taken")]
    NameTaken(String),
    /// The database failed (I/O, corruption, a bug in a query).
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
}

/// An account: who may sign in, and whose instances these are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Random, stable: the JWTs' `sub` and `cognito:username`.
    pub id: String,
    /// Lower-cased; unique.
    pub email: String,
    /// The argon2 PHC string.
    pub password_hash: String,
    /// A disabled account's tokens are refused everywhere.
    pub disabled: bool,
    /// The subscription's end, `YYYY-MM-DD` (the id token's `custom:sub-exp`).
    pub subscription_expires: String,
    /// When it was added.
    pub created_at: u64,
}

/// What [`Store::add_account`] is given.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Random id.
    pub id: String,
    /// Lower-cased email.
    pub email: String,
    /// The argon2 PHC string.
    pub password_hash: String,
    /// `YYYY-MM-DD`.
    pub subscription_expires: String,
}

/// An account's instance: a stable name in the zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Random id.
    pub id: String,
    /// The owner.
    pub account_id: String,
    /// The label in the zone (the instance's domain is `name.zone`).
    pub name: String,
    /// When it was first registered.
    pub created_at: u64,
}

/// A refresh token the master handed out, by its `jti`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    /// The token's id.
    pub jti: String,
    /// Whose it is.
    pub account_id: String,
    /// The chain of rotations it belongs to: a replay revokes the whole family.
    pub family: String,
    /// When it expires.
    pub expires_at: u64,
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// It was fresh: it is now used, and its successor is stored.
    Rotated,
    /// It had been used before: a copy is in someone else's hands. Its family is revoked.
    Replayed,
    /// The store never issued it, or its family was revoked.
    Unknown,
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Increasing.
    pub id: i64,
    /// When.
    pub at: u64,
    /// Who did it (`cli`, an account id, `master`).
    pub actor: String,
    /// What (`account.add`, `account.disable`, `instance.register`).
    pub action: String,
    /// What it was done to (an email, an instance name).
    pub subject: String,
    /// Anything else worth keeping.
    pub detail: String,
}

/// A blocked version spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionBlock {
    /// The spec in its canonical form (`<=2021.1.4`).
    pub spec: String,
    /// Why, as the owner is told.
    pub reason: String,
    /// When it was blocked.
    pub created_at: u64,
}

/// Who did a change and when: what its audit entry records.
#[derive(Debug, Clone, Copy)]
pub struct Actor<'a> {
    /// Who.
    pub who: &'a str,
    /// When (Unix seconds).
    pub at: u64,
}

/// The master's storage. Object safe: the master holds an `Arc<dyn Store>`.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Adds an account (and its audit entry).
    async fn add_account(&self, new: NewAccount, by: Actor<'_>) -> Result<Account, StoreError>;
    /// The account with this (lower-cased) email.
    async fn account_by_email(&self, email: &str) -> Result<Option<Account>, StoreError>;
    /// The account with this id.
    async fn account_by_id(&self, id: &str) -> Result<Option<Account>, StoreError>;
    /// Every account, oldest first.
    async fn accounts(&self) -> Result<Vec<Account>, StoreError>;
    /// Disables an account (and its audit entry); `NoAccount` if there is none.
    async fn disable_account(&self, email: &str, by: Actor<'_>) -> Result<Account, StoreError>;
    /// The account's instance, registering it under `name` (and its audit entry) if it has
    /// none yet. `NameTaken` if another account holds `name`.
    async fn register_instance(
        &self,
        account_id: &str,
        instance_id: &str,
        name: &str,
        by: Actor<'_>,
    ) -> Result<Instance, StoreError>;
    /// The account's instance, if it registered one.
    async fn instance_of(&self, account_id: &str) -> Result<Option<Instance>, StoreError>;
    /// Records a refresh token just handed out.
    async fn add_refresh(&self, record: RefreshRecord) -> Result<(), StoreError>;
    /// Uses the refresh token `jti` at `now` and stores its successor `next` (same family) in
    /// the same transaction; a replay revokes the family instead.
    async fn rotate_refresh(
        &self,
        jti: &str,
        next: RefreshRecord,
        now: u64,
    ) -> Result<Rotation, StoreError>;
    /// Blocks `spec` with `reason` (its audit entry). A spec not blocked before clears every
    /// override (an entry each); the names of the instances whose override was cleared are
    /// returned. A spec already blocked gets the new reason.
    async fn block_version(
        &self,
        spec: &str,
        reason: &str,
        by: Actor<'_>,
    ) -> Result<Vec<String>, StoreError>;
    /// Removes a block (its audit entry); false if there was none.
    async fn unblock_version(&self, spec: &str, by: Actor<'_>) -> Result<bool, StoreError>;
    /// Every block, oldest first.
    async fn blocked_versions(&self) -> Result<Vec<VersionBlock>, StoreError>;
    /// The owner of the instance `instance_id` (named `name` in the audit log) overrides the
    /// block list for it.
    async fn set_override(
        &self,
        instance_id: &str,
        name: &str,
        by: Actor<'_>,
    ) -> Result<(), StoreError>;
    /// Whether the instance's owner has overridden the block list since the last new block.
    async fn has_override(&self, instance_id: &str) -> Result<bool, StoreError>;
    /// The newest `limit` audit entries, newest first.
    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError>;
}

#[cfg(test)]
mod tests;
