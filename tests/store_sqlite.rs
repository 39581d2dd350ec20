//! The store suite against SQLite files (the embedded default), plus SQLite-only checks.

mod store_common;

store_common::suite!(store_common::with_sqlite);

#[tokio::test]
async fn sqlite_file_and_its_folder_are_created_in_wal_mode() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let path = dir.path().join("nested/data/centralino.db");
    let url = format!("sqlite://{}", path.display());
    let store = centralino::store::Store::open(&url).await.expect("open");
    assert_eq!(store.backend(), centralino::store::Backend::Sqlite);
    assert!(path.exists(), "database file created");
    store.close().await;

    let pool = sqlx::AnyPool::connect(&url).await.expect("reconnect");
    let (mode,): (String,) = sqlx::query_as("PRAGMA journal_mode").fetch_one(&pool).await.expect("pragma");
    assert_eq!(mode, "wal");
    pool.close().await;
}

#[tokio::test]
async fn unknown_url_scheme_is_refused_before_connecting() {
    let err = centralino::store::Store::open("mysql://root:pw@localhost/x").await.unwrap_err();
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("mysql"), "{err}");
}
