//! The operators directory: accounts with digest HA1 hashes (never plain passwords), the
//! queues each serves at a level, languages and max calls.
//!
//! Owns: the `operators` table. Must not touch: registrations (the SIP registrar's), the
//! engine's presence state. Hashing is the caller's (the SIP layer knows digest).

use sqlx::Row;

use super::{to_ms, Store, StoreError};

/// One stored account.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OperatorRow {
    pub username: String,
    pub display_name: String,
    #[serde(skip)]
    pub ha1_md5: String,
    #[serde(skip)]
    pub ha1_sha256: String,
    /// `(queue, level)`; lower level = preferred.
    pub queues: Vec<(String, u32)>,
    /// ISO 639-1 codes.
    pub languages: Vec<String>,
    pub max_calls: u32,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct QueueLevel {
    queue: String,
    level: u32,
}

fn queues_json(queues: &[(String, u32)]) -> String {
    let list: Vec<QueueLevel> = queues.iter().map(|(q, l)| QueueLevel { queue: q.clone(), level: *l }).collect();
    serde_json::to_string(&list).unwrap_or_else(|_| "[]".into())
}

impl Store {
    /// Every account, by username.
    pub async fn operators(&self) -> Result<Vec<OperatorRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT username, display_name, ha1_md5, ha1_sha256, queues, languages, max_calls \
             FROM operators ORDER BY username",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let queues: String = row.try_get("queues")?;
            let languages: String = row.try_get("languages")?;
            let max_calls: i64 = row.try_get("max_calls")?;
            // A hand-edited row with bad JSON serves no queue rather than failing start-up.
            let queues: Vec<QueueLevel> = serde_json::from_str(&queues).unwrap_or_default();
            out.push(OperatorRow {
                username: row.try_get("username")?,
                display_name: row.try_get("display_name")?,
                ha1_md5: row.try_get("ha1_md5")?,
                ha1_sha256: row.try_get("ha1_sha256")?,
                queues: queues.into_iter().map(|q| (q.queue, q.level)).collect(),
                languages: languages.split(',').map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect(),
                max_calls: u32::try_from(max_calls).unwrap_or(1).max(1),
            });
        }
        Ok(out)
    }

    /// Adds an account; `Ok(false)` when the username exists.
    pub async fn add_operator(&self, op: &OperatorRow, now: jiff::Timestamp) -> Result<bool, StoreError> {
        if self.operators().await?.iter().any(|o| o.username == op.username) {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO operators (username, display_name, ha1_md5, ha1_sha256, queues, languages, max_calls, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(op.username.clone())
        .bind(op.display_name.clone())
        .bind(op.ha1_md5.clone())
        .bind(op.ha1_sha256.clone())
        .bind(queues_json(&op.queues))
        .bind(op.languages.join(","))
        .bind(i64::from(op.max_calls))
        .bind(to_ms(now))
        .execute(&self.pool)
        .await?;
        Ok(true)
    }

    /// Replaces an account's fields (hashes included); `Ok(false)` when it does not exist.
    pub async fn update_operator(&self, op: &OperatorRow) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE operators SET display_name = $2, ha1_md5 = $3, ha1_sha256 = $4, queues = $5, \
             languages = $6, max_calls = $7 WHERE username = $1",
        )
        .bind(op.username.clone())
        .bind(op.display_name.clone())
        .bind(op.ha1_md5.clone())
        .bind(op.ha1_sha256.clone())
        .bind(queues_json(&op.queues))
        .bind(op.languages.join(","))
        .bind(i64::from(op.max_calls))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Removes an account; `Ok(false)` when it did not exist.
    pub async fn remove_operator(&self, username: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM operators WHERE username = $1").bind(username.to_string()).execute(&self.pool).await?;
        Ok(done.rows_affected() > 0)
    }
}
