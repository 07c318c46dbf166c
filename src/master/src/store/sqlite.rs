//! The embedded store: one SQLite file in the state directory, WAL with `synchronous = FULL`
//! (an acknowledged change survives a crash or power cut), migrations embedded from
//! `migrations/sqlite`.

use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::{
    Account, Actor, AuditEntry, Instance, NewAccount, RefreshRecord, Rotation, Store, StoreError,
    VersionBlock,
};

/// The database file's name in the state directory.
pub const DB_FILE: &str = "master.db";

/// How long a writer waits for another process's transaction (the CLI beside a running
/// master) before the store reports the database busy.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The store in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) `dir/master.db` and brings its schema up to date.
    pub async fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(DB_FILE);
        // Made owner-only before SQLite sees it: the password hashes are in it, and SQLite
        // gives its -wal and -shm files the database file's mode.
        if let Err(e) = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            && e.kind() != std::io::ErrorKind::AlreadyExists
        {
            return Err(StoreError::Database(sqlx::Error::Io(e)));
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        Self::with_options(options).await
    }

    /// A private in-memory database, for tests.
    pub async fn in_memory() -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        Self::with_options(options).await
    }

    async fn with_options(options: SqliteConnectOptions) -> Result<Self, StoreError> {
        // One connection: SQLite serializes writers anyway, and an in-memory database is
        // private to its connection.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        Ok(Self { pool })
    }
}

fn account(row: &SqliteRow) -> Result<Account, sqlx::Error> {
    Ok(Account {
        id: row.try_get("id")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        subscription_expires: row.try_get("subscription_expires")?,
        created_at: row.try_get::<i64, _>("created_at")? as u64,
    })
}

fn instance(row: &SqliteRow) -> Result<Instance, sqlx::Error> {
    Ok(Instance {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        name: row.try_get("name")?,
        created_at: row.try_get::<i64, _>("created_at")? as u64,
    })
}

const ACCOUNT_COLUMNS: &str =
    "id, email, password_hash, disabled, subscription_expires, created_at";

async fn audit(
    tx: &mut Transaction<'_, Sqlite>,
    by: Actor<'_>,
    action: &str,
    subject: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_log (at, actor, action, subject, detail) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(by.at as i64)
    .bind(by.who)
    .bind(action)
    .bind(subject)
    .bind(detail)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

#[async_trait]
impl Store for SqliteStore {
    async fn add_account(&self, new: NewAccount, by: Actor<'_>) -> Result<Account, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let inserted = sqlx::query(
            "INSERT INTO accounts (id, email, password_hash, subscription_expires, created_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(&new.id)
        .bind(&new.email)
        .bind(&new.password_hash)
        .bind(&new.subscription_expires)
        .bind(by.at as i64)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => return Err(StoreError::AccountExists(new.email)),
            other => other?,
        };
        audit(&mut tx, by, "account.add", &new.email, "").await?;
        tx.commit().await?;
        Ok(Account {
            id: new.id,
            email: new.email,
            password_hash: new.password_hash,
            disabled: false,
            subscription_expires: new.subscription_expires,
            created_at: by.at,
        })
    }

    async fn account_by_email(&self, email: &str) -> Result<Option<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE email = ?");
        let row = sqlx::query(&sql)
            .bind(email)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(account).transpose()?)
    }

    async fn account_by_id(&self, id: &str) -> Result<Option<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(account).transpose()?)
    }

    async fn accounts(&self) -> Result<Vec<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY created_at, email");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        Ok(rows.iter().map(account).collect::<Result<_, _>>()?)
    }

    async fn disable_account(&self, email: &str, by: Actor<'_>) -> Result<Account, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let sql =
            format!("UPDATE accounts SET disabled = 1 WHERE email = ? RETURNING {ACCOUNT_COLUMNS}");
        let row = sqlx::query(&sql)
            .bind(email)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::NoAccount(email.to_owned()))?;
        let found = account(&row)?;
        // Its refresh tokens die with it: re-enabling an account must not revive old sessions.
        sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE account_id = ?")
            .bind(&found.id)
            .execute(&mut *tx)
            .await?;
        audit(&mut tx, by, "account.disable", email, "").await?;
        tx.commit().await?;
        Ok(found)
    }

    async fn register_instance(
        &self,
        account_id: &str,
        instance_id: &str,
        name: &str,
        by: Actor<'_>,
    ) -> Result<Instance, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let existing = sqlx::query(
            "SELECT id, account_id, name, created_at FROM instances WHERE account_id = ?",
        )
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            return Ok(instance(&row)?);
        }
        let inserted = sqlx::query(
            "INSERT INTO instances (id, account_id, name, created_at) VALUES (?, ?, ?, ?)",
        )
        .bind(instance_id)
        .bind(account_id)
        .bind(name)
        .bind(by.at as i64)
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(StoreError::NameTaken(name.to_owned()));
            }
            other => other?,
        };
        audit(&mut tx, by, "instance.register", name, account_id).await?;
        tx.commit().await?;
        Ok(Instance {
            id: instance_id.to_owned(),
            account_id: account_id.to_owned(),
            name: name.to_owned(),
            created_at: by.at,
        })
    }

    async fn instance_of(&self, account_id: &str) -> Result<Option<Instance>, StoreError> {
        let row = sqlx::query(
            "SELECT id, account_id, name, created_at FROM instances WHERE account_id = ?",
        )
        .bind(account_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(instance).transpose()?)
    }

    async fn add_refresh(&self, record: RefreshRecord) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        insert_refresh(&mut tx, &record).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn rotate_refresh(
        &self,
        jti: &str,
        next: RefreshRecord,
        now: u64,
    ) -> Result<Rotation, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let row = sqlx::query(
            "SELECT family, used_at, revoked FROM refresh_tokens WHERE jti = ? AND account_id = ?",
        )
        .bind(jti)
        .bind(&next.account_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(Rotation::Unknown);
        };
        let family: String = row.try_get("family")?;
        let used: Option<i64> = row.try_get("used_at")?;
        let revoked = row.try_get::<i64, _>("revoked")? != 0;
        if revoked {
            return Ok(Rotation::Unknown);
        }
        if used.is_some() {
            sqlx::query("UPDATE refresh_tokens SET revoked = 1 WHERE family = ?")
                .bind(&family)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(Rotation::Replayed);
        }
        sqlx::query("UPDATE refresh_tokens SET used_at = ? WHERE jti = ?")
            .bind(now as i64)
            .bind(jti)
            .execute(&mut *tx)
            .await?;
        let next = RefreshRecord { family, ..next };
        insert_refresh(&mut tx, &next).await?;
        tx.commit().await?;
        Ok(Rotation::Rotated)
    }

    async fn block_version(
        &self,
        spec: &str,
        reason: &str,
        by: Actor<'_>,
    ) -> Result<Vec<String>, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let updated = sqlx::query("UPDATE version_blocks SET reason = ? WHERE spec = ?")
            .bind(reason)
            .bind(spec)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let mut cleared = Vec::new();
        if updated == 0 {
            sqlx::query("INSERT INTO version_blocks (spec, reason, created_at) VALUES (?, ?, ?)")
                .bind(spec)
                .bind(reason)
                .bind(by.at as i64)
                .execute(&mut *tx)
                .await?;
            let rows = sqlx::query(
                "SELECT i.name FROM version_overrides o JOIN instances i ON i.id = o.instance_id \
                 ORDER BY i.name",
            )
            .fetch_all(&mut *tx)
            .await?;
            for row in &rows {
                cleared.push(row.try_get::<String, _>("name")?);
            }
            sqlx::query("DELETE FROM version_overrides")
                .execute(&mut *tx)
                .await?;
        }
        let action = if updated == 0 {
            "version.block"
        } else {
            "version.reason"
        };
        audit(&mut tx, by, action, spec, reason).await?;
        for name in &cleared {
            audit(&mut tx, by, "override.cleared", name, spec).await?;
        }
        tx.commit().await?;
        Ok(cleared)
    }

    async fn unblock_version(&self, spec: &str, by: Actor<'_>) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let gone = sqlx::query("DELETE FROM version_blocks WHERE spec = ?")
            .bind(spec)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if gone == 0 {
            return Ok(false);
        }
        audit(&mut tx, by, "version.unblock", spec, "").await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn blocked_versions(&self) -> Result<Vec<VersionBlock>, StoreError> {
        let rows = sqlx::query(
            "SELECT spec, reason, created_at FROM version_blocks ORDER BY created_at, spec",
        )
        .fetch_all(&self.pool)
        .await?;
        let block = |row: &SqliteRow| -> Result<VersionBlock, sqlx::Error> {
            Ok(VersionBlock {
                spec: row.try_get("spec")?,
                reason: row.try_get("reason")?,
                created_at: row.try_get::<i64, _>("created_at")? as u64,
            })
        };
        Ok(rows.iter().map(block).collect::<Result<_, _>>()?)
    }

    async fn set_override(
        &self,
        instance_id: &str,
        name: &str,
        by: Actor<'_>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO version_overrides (instance_id, created_at) VALUES (?, ?) \
             ON CONFLICT (instance_id) DO NOTHING",
        )
        .bind(instance_id)
        .bind(by.at as i64)
        .execute(&mut *tx)
        .await?;
        audit(&mut tx, by, "override.set", name, "").await?;
        tx.commit().await?;
        Ok(())
    }

    async fn has_override(&self, instance_id: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT 1 AS one FROM version_overrides WHERE instance_id = ?")
            .bind(instance_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    async fn audit_log(&self, limit: u32) -> Result<Vec<AuditEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, at, actor, action, subject, detail FROM audit_log ORDER BY id DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let entry = |row: &SqliteRow| -> Result<AuditEntry, sqlx::Error> {
            Ok(AuditEntry {
                id: row.try_get("id")?,
                at: row.try_get::<i64, _>("at")? as u64,
                actor: row.try_get("actor")?,
                action: row.try_get("action")?,
                subject: row.try_get("subject")?,
                detail: row.try_get("detail")?,
            })
        };
        Ok(rows.iter().map(entry).collect::<Result<_, _>>()?)
    }
}

async fn insert_refresh(
    tx: &mut Transaction<'_, Sqlite>,
    record: &RefreshRecord,
) -> Result<(), sqlx::Error> {
    // Expired tokens can never be presented again (their JWT has expired too): each new
    // one sweeps them, so the table holds only live tokens and their used predecessors.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < ?")
        .bind(now as i64)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO refresh_tokens (jti, account_id, family, expires_at) VALUES (?, ?, ?, ?)",
    )
    .bind(&record.jti)
    .bind(&record.account_id)
    .bind(&record.family)
    .bind(record.expires_at as i64)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
