//! The SQL store: one sqlx pool over SQLite (the embedded default) or PostgreSQL.
//!
//! Owns: the crate's only import of sqlx; the schema (`migrations/sqlite`, `migrations/postgres`,
//! applied by [`Store::open`]); call records, queue events, reports, exports and retention.
//! Must not touch: engine decisions, SIP, media, the clock (callers pass `now`).
//! Invariants: sqlx `Any` carries only bool/int/float/text/blob, so timestamps are epoch
//! milliseconds (BIGINT) and ids TEXT; every statement is written once and runs unchanged on both
//! backends (`$n` placeholders, `ON CONFLICT`, `CASE` rather than `MIN`/`LEAST`, no `SUM`).

pub mod export;
pub mod model;
pub mod operators;
pub mod records;
pub mod report;
pub mod retention;
pub mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Executor};

pub use model::{CallStart, QueueEvent};
pub use retention::CallerHasher;
pub use writer::{spawn_writer, WriteItem, WriterHandle, WriterSnapshot, WriterStats};

/// The embedded default database.
pub const DEFAULT_URL: &str = "sqlite://data/centralino.db";

/// The default short-abandon threshold: callers who hang up sooner are not counted against the
/// service level.
pub const DEFAULT_SHORT_ABANDON: Duration = Duration::from_secs(5);

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("src/store/migrations/postgres");

/// What can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names neither SQLite nor PostgreSQL (only the scheme is shown: URLs carry passwords).
    #[error("unsupported database URL scheme {scheme:?}: use sqlite:… or postgres://…")]
    UnsupportedUrl {
        /// The part before `:`.
        scheme: String,
    },
    /// The SQLite file's folder could not be created.
    #[error("cannot create the database folder {}: {source}", path.display())]
    CreateDir {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The first connection failed (server down, wrong credentials, unreadable file).
    #[error("cannot connect to the {backend} database: {source}")]
    Connect {
        /// Which backend.
        backend: Backend,
        /// Why.
        source: sqlx::Error,
    },
    /// Applying the schema migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The database refused the data itself (a constraint): retrying the same write cannot help.
    #[error("the database rejected the data: {0}")]
    Rejected(#[source] sqlx::Error),
    /// Any other database failure (connection lost, locked, missing table): worth retrying.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> StoreError {
        let rejected = match &e {
            sqlx::Error::Database(db) => !matches!(db.kind(), sqlx::error::ErrorKind::Other),
            _ => false,
        };
        if rejected {
            StoreError::Rejected(e)
        } else {
            StoreError::Database(e)
        }
    }
}

impl StoreError {
    /// Whether the same write may succeed later (the batching writer retries these).
    pub fn is_retryable(&self) -> bool {
        !matches!(self, StoreError::Rejected(_) | StoreError::UnsupportedUrl { .. })
    }
}

/// Which database engine a [`Store`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    /// An embedded SQLite file (WAL mode).
    Sqlite,
    /// A PostgreSQL server, shared by every node.
    Postgres,
}

impl Backend {
    /// The backend a URL selects: `sqlite:` or `postgres://` / `postgresql://`.
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        let scheme = url.split(':').next().unwrap_or_default().to_ascii_lowercase();
        match scheme.as_str() {
            "sqlite" => Ok(Backend::Sqlite),
            "postgres" | "postgresql" => Ok(Backend::Postgres),
            _ => Err(StoreError::UnsupportedUrl { scheme }),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A handle on the database: cheap to clone, shared by the writer task, reports and commands.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    node: Arc<str>,
    short_abandon: Duration,
    hasher: Option<Arc<CallerHasher>>,
}

impl Store {
    /// Connects, creating a SQLite file (and its folder) on first run, and applies migrations.
    /// This is what `serve` and `centralino migrate` call.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let store = Store::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Connects without migrating (SQLite: creates the file and folder, turns WAL on).
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let (url, options) = match backend {
            Backend::Sqlite => {
                let target = SqliteTarget::parse(url);
                if let SqliteTarget::File { folder: Some(folder), .. } = &target {
                    tokio::fs::create_dir_all(folder)
                        .await
                        .map_err(|source| StoreError::CreateDir { path: folder.clone(), source })?;
                }
                let options = AnyPoolOptions::new()
                    // An in-memory database lives in one connection; a file allows readers
                    // beside the one writer (WAL).
                    .max_connections(if target.is_memory() { 1 } else { 4 })
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;").await?;
                            Ok(())
                        })
                    });
                (target.url(url), options)
            }
            Backend::Postgres => (url.to_string(), AnyPoolOptions::new().max_connections(8)),
        };
        let pool = options.connect(&url).await.map_err(|source| StoreError::Connect { backend, source })?;
        Ok(Store { pool, backend, node: Arc::from("local"), short_abandon: DEFAULT_SHORT_ABANDON, hasher: None })
    }

    /// Applies the backend's pending migrations; running it again changes nothing.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// Which database engine this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Names this node (default `local`): the node of calls whose record arrives without a start,
    /// and the scope of [`close_interrupted`](Store::close_interrupted). Use the same name in
    /// [`CallStart::node`].
    pub fn with_node(mut self, node: impl Into<String>) -> Store {
        self.node = Arc::from(node.into());
        self
    }

    /// The node name records are written under.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Abandons shorter than this are stored with `short_abandon` set (default 5 s).
    pub fn with_short_abandon(mut self, threshold: Duration) -> Store {
        self.short_abandon = threshold;
        self
    }

    /// Stores callers as salted hashes instead of as presented.
    pub fn with_caller_hasher(mut self, hasher: CallerHasher) -> Store {
        self.hasher = Some(Arc::new(hasher));
        self
    }

    /// Closes every connection; later queries fail with a retryable error.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The caller as stored: hashed when a hasher is set.
    fn stored_caller(&self, caller: &str) -> String {
        match &self.hasher {
            Some(h) => h.hash(caller),
            None => caller.to_string(),
        }
    }
}

/// Where a `sqlite:` URL points.
#[derive(Debug, PartialEq, Eq)]
enum SqliteTarget {
    /// `sqlite::memory:` or `mode=memory`.
    Memory,
    /// A file; `explicit_mode` when the URL already says `mode=…`.
    File { folder: Option<PathBuf>, explicit_mode: bool },
}

impl SqliteTarget {
    /// Reads the file path the way sqlx does: what follows `sqlite://` or `sqlite:`, up to `?`.
    fn parse(url: &str) -> SqliteTarget {
        let rest = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let mode = query.split('&').find_map(|kv| kv.strip_prefix("mode="));
        if path.is_empty() || path == ":memory:" || mode == Some("memory") {
            return SqliteTarget::Memory;
        }
        let folder = std::path::Path::new(path).parent().filter(|p| !p.as_os_str().is_empty()).map(PathBuf::from);
        SqliteTarget::File { folder, explicit_mode: mode.is_some() }
    }

    fn is_memory(&self) -> bool {
        matches!(self, SqliteTarget::Memory)
    }

    /// The URL to connect with: files are created when missing unless the URL chose a mode.
    fn url(&self, url: &str) -> String {
        match self {
            SqliteTarget::File { explicit_mode: false, .. } => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        }
    }
}

/// Epoch milliseconds, the stored form of every timestamp.
pub(crate) fn to_ms(t: jiff::Timestamp) -> i64 {
    t.as_millisecond()
}

/// A stored epoch-millisecond value back to a timestamp (out-of-range values clamp).
pub(crate) fn from_ms(ms: i64) -> jiff::Timestamp {
    jiff::Timestamp::from_millisecond(ms).unwrap_or(if ms < 0 { jiff::Timestamp::MIN } else { jiff::Timestamp::MAX })
}

/// A duration as stored milliseconds (saturating).
pub(crate) fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_scheme_selects_the_backend() {
        assert_eq!(Backend::from_url("sqlite://data/centralino.db").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::from_url("sqlite::memory:").unwrap(), Backend::Sqlite);
        assert_eq!(Backend::from_url("postgres://u@h/db").unwrap(), Backend::Postgres);
        assert_eq!(Backend::from_url("postgresql://u@h/db").unwrap(), Backend::Postgres);
    }

    #[test]
    fn unsupported_url_error_shows_the_scheme_but_not_the_password() {
        let err = Backend::from_url("mysql://root:secret@db/x").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"mysql\""), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn relative_sqlite_file_gets_its_folder_created_and_mode_rwc() {
        let t = SqliteTarget::parse("sqlite://data/centralino.db");
        assert_eq!(t, SqliteTarget::File { folder: Some(PathBuf::from("data")), explicit_mode: false });
        assert_eq!(t.url("sqlite://data/centralino.db"), "sqlite://data/centralino.db?mode=rwc");
    }

    #[test]
    fn absolute_sqlite_file_keeps_its_own_mode() {
        let url = "sqlite:///var/lib/c/x.db?mode=ro";
        let t = SqliteTarget::parse(url);
        assert_eq!(t, SqliteTarget::File { folder: Some(PathBuf::from("/var/lib/c")), explicit_mode: true });
        assert_eq!(t.url(url), url);
    }

    #[test]
    fn bare_file_name_needs_no_folder() {
        let t = SqliteTarget::parse("sqlite:centralino.db?cache=shared");
        assert_eq!(t, SqliteTarget::File { folder: None, explicit_mode: false });
        assert_eq!(t.url("sqlite:centralino.db?cache=shared"), "sqlite:centralino.db?cache=shared&mode=rwc");
    }

    #[test]
    fn in_memory_urls_are_recognised() {
        for url in ["sqlite::memory:", "sqlite://:memory:", "sqlite://?mode=memory"] {
            assert!(SqliteTarget::parse(url).is_memory(), "{url}");
        }
    }

    #[test]
    fn timestamps_round_trip_through_milliseconds() {
        let t = jiff::Timestamp::from_millisecond(1_772_442_000_123).unwrap();
        assert_eq!(from_ms(to_ms(t)), t);
        assert_eq!(from_ms(i64::MAX), jiff::Timestamp::MAX);
        assert_eq!(duration_ms(Duration::from_millis(1500)), 1500);
    }

    #[test]
    fn constraint_violations_are_not_retryable_but_other_errors_are() {
        assert!(StoreError::from(sqlx::Error::PoolTimedOut).is_retryable());
        assert!(StoreError::Database(sqlx::Error::PoolClosed).is_retryable());
        assert!(!StoreError::Rejected(sqlx::Error::PoolClosed).is_retryable());
    }
}
