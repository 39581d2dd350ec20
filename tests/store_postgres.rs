//! The store suite against PostgreSQL. Set `CENTRALINO_TEST_POSTGRES_URL`
//! (e.g. `postgres://postgres@127.0.0.1:5432/test`); each test runs in a fresh schema.
//! Without it every test returns at once with a note on stderr.

mod store_common;

store_common::suite!(store_common::with_postgres);

#[tokio::test]
async fn postgres_url_selects_the_postgres_backend() {
    store_common::with_postgres(|url| async move {
        let store = centralino::store::Store::open(&url).await.expect("open");
        assert_eq!(store.backend(), centralino::store::Backend::Postgres);
        store.close().await;
    })
    .await;
}
