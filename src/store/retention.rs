//! Keeping personal data no longer than needed: deleting old records and hashing callers.
//!
//! Owns: [`Store::delete_older_than`], [`CallerHasher`] and the per-install salt kept in
//! `store_meta`.
//! Must not touch: the clock (callers pass `now`), a global RNG (callers pass a salt candidate),
//! live calls (only finished rows are deleted).
//! A hashed number is pseudonymous, not anonymous: phone numbers are few enough to enumerate,
//! so the salt must stay secret and per install.

use sha2::{Digest, Sha256};

use super::{to_ms, Store, StoreError};

/// The `store_meta` key holding the caller-hash salt.
const SALT_KEY: &str = "caller_hash_salt";

/// Hashes callers' numbers as `sha256(salt ‖ ":" ‖ caller)` in lower-case hex.
#[derive(Clone)]
pub struct CallerHasher {
    salt: String,
}

impl std::fmt::Debug for CallerHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the salt.
        f.write_str("CallerHasher { .. }")
    }
}

impl CallerHasher {
    /// A hasher with this install's salt (see [`Store::install_salt`]).
    pub fn new(salt: impl Into<String>) -> CallerHasher {
        CallerHasher { salt: salt.into() }
    }

    /// The caller's 64-character hex hash; the same caller always hashes the same per install.
    pub fn hash(&self, caller: &str) -> String {
        let mut h = Sha256::new();
        h.update(self.salt.as_bytes());
        h.update(b":");
        h.update(caller.as_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl Store {
    /// Deletes finished calls that arrived, and queue events and closed presence intervals
    /// that happened, more than `days` days before `now`. Live calls are kept whatever their
    /// age. Returns the number of rows deleted.
    pub async fn delete_older_than(&self, days: u32, now: jiff::Timestamp) -> Result<u64, StoreError> {
        let cutoff = to_ms(now).saturating_sub(i64::from(days).saturating_mul(86_400_000));
        let mut tx = self.pool.begin().await?;
        let mut deleted = 0;
        for sql in [
            "DELETE FROM calls WHERE arrived_at < $1 AND outcome IS NOT NULL",
            "DELETE FROM queue_events WHERE at < $1",
            "DELETE FROM operator_presence WHERE ended_at IS NOT NULL AND ended_at < $1",
        ] {
            deleted += sqlx::query(sql).bind(cutoff).execute(&mut *tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(deleted)
    }

    /// This install's caller-hash salt: `candidate` is stored the first time (draw it from a
    /// secure random source), and the stored salt is returned ever after, also to other nodes.
    pub async fn install_salt(&self, candidate: &str) -> Result<String, StoreError> {
        sqlx::query("INSERT INTO store_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(SALT_KEY)
            .bind(candidate)
            .execute(&self.pool)
            .await?;
        let salt: String = sqlx::query_scalar("SELECT value FROM store_meta WHERE key = $1")
            .bind(SALT_KEY)
            .fetch_one(&self.pool)
            .await?;
        Ok(salt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_salted_sha256_hex() {
        // printf 's1:3331234567' | sha256sum
        let h = CallerHasher::new("s1").hash("3331234567");
        assert_eq!(h.len(), 64);
        assert!(h.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(h, "96bb081f5658fdebd99303346ee081374054d30454bab19bf3b14b616fa2202e");
    }

    #[test]
    fn same_caller_same_salt_same_hash_and_salt_changes_it() {
        let a = CallerHasher::new("s1");
        assert_eq!(a.hash("3331234567"), a.hash("3331234567"));
        assert_ne!(a.hash("3331234567"), CallerHasher::new("s2").hash("3331234567"));
        assert_ne!(a.hash("3331234567"), a.hash("3331234568"));
    }

    #[test]
    fn debug_output_hides_the_salt() {
        assert!(!format!("{:?}", CallerHasher::new("very-secret")).contains("very-secret"));
    }
}
