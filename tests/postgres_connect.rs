//! `PostgresStore::connect` against a real PostgreSQL: many instances starting at once on a fresh
//! table, and errors that name their cause (the server's message and SQLSTATE, the address tried)
//! without ever showing a password.

use std::error::Error as _;

use zddm::{PostgresError, PostgresStore, Store};
use zddm_suite::servers::PostgresServer;

type Orders = PostgresStore<u64, String>;

/// `host:port` of the server, and its URL for the database `dbname`.
fn address_and_url(server: &PostgresServer, dbname: &str) -> (String, String) {
    let url = server.url();
    let (base, _) = url.rsplit_once('/').expect("a database in the URL");
    let (_, address) = base.rsplit_once('@').expect("a user in the URL");
    (address.to_owned(), format!("{base}/{dbname}"))
}

/// The driver's error under a PostgreSQL error.
fn driver_error(error: &PostgresError) -> &tokio_postgres::Error {
    error.source().and_then(|source| source.downcast_ref()).unwrap_or_else(|| panic!("no driver error under {error:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_connects_on_a_fresh_table_all_succeed() {
    let server = PostgresServer::start();
    for round in 0..10 {
        let table = format!("fresh_{round}");
        let starts: Vec<_> = (0..8u64)
            .map(|instance| {
                let (url, table) = (server.url(), table.clone());
                tokio::spawn(async move {
                    let store = Orders::connect(&url, &table, 1).await?;
                    store.put(&instance, &format!("instance {instance}")).await?;
                    Ok::<_, PostgresError>(store)
                })
            })
            .collect();
        let mut stores = Vec::new();
        for (instance, start) in starts.into_iter().enumerate() {
            match start.await.expect("the task runs") {
                Ok(store) => stores.push(store),
                Err(error) => panic!("round {round}, instance {instance}: {error}"),
            }
        }
        assert_eq!(stores[0].len().await.unwrap(), 8, "round {round}: one table, every instance's write");
        assert_eq!(stores[7].get(&3).await.unwrap().as_deref(), Some("instance 3"), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_database_is_named_with_the_server_address() {
    let server = PostgresServer::start();
    let (address, url) = address_and_url(&server, "no_such_db");
    let error = Orders::connect(&url, "orders", 1).await.unwrap_err();
    assert!(matches!(error, PostgresError::Connect(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(r#"database "no_such_db" does not exist (3D000)"#), "{message}");
    assert!(message.contains(&address), "{message}");
    assert_eq!(message.matches("does not exist").count(), 1, "said once: {message}");
    assert!(!message.contains("db error") && !message.contains("creating a new object"), "{message}");
    assert_eq!(driver_error(&error).code(), Some(&tokio_postgres::error::SqlState::INVALID_CATALOG_NAME));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_appear_in_errors() {
    let closed = [
        // Nothing listens on port 1: the connection is refused.
        "postgres://u:secret@127.0.0.1:1/x",
        "postgres://u@127.0.0.1:1/x?password=secret",
        "host=127.0.0.1 port=1 user=u password=secret dbname=x",
    ];
    for url in closed {
        let error = Orders::connect(url, "orders", 1).await.unwrap_err();
        assert!(matches!(error, PostgresError::Connect(_)), "{url}: {error:?}");
        let (display, debug) = (error.to_string(), format!("{error:?}"));
        assert!(display.contains("127.0.0.1:1"), "{url}: {display}");
        assert!(display.contains("refused"), "the cause is kept: {display}");
        assert!(!display.contains("secret") && !debug.contains("secret"), "{url}: {display} / {debug}");
        assert!(error.source().is_some(), "{url}: the driver's error stays the source");
    }

    let malformed = [
        ("postgres://u:secret@127.0.0.1:notaport/x", "postgres://u:***@127.0.0.1:notaport/x"),
        ("postgresql://u:se@cret@[::1/x", "postgresql://u:***@[::1/x"),
        ("postgres://u@127.0.0.1:notaport/x?password=secret&dbname=x", "?password=***&dbname=x"),
        ("host=127.0.0.1 password=secret port=notaport", "host=127.0.0.1 password=*** port=notaport"),
        ("host=127.0.0.1 password = 'sec\\' ret' port=notaport", "password = *** port=notaport"),
        ("host=127.0.0.1 password='secret", "password=***"),
    ];
    for (url, shown) in malformed {
        let error = Orders::connect(url, "orders", 1).await.unwrap_err();
        assert!(matches!(error, PostgresError::Url { .. }), "{url}: {error:?}");
        let (display, debug) = (error.to_string(), format!("{error:?}"));
        assert!(display.contains(shown), "{url}: {display}");
        for text in [&display, &debug] {
            assert!(!text.contains("secret") && !text.contains("cret") && !text.contains("ret'"), "{url}: {text}");
        }
        assert!(error.source().is_some(), "{url}: the driver's error stays the source");
    }
    let error = Orders::connect("postgres://u:secret@127.0.0.1:notaport/x", "orders", 1).await.unwrap_err();
    assert!(error.to_string().contains("invalid value for option `port`"), "the parser's reason is kept: {error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_statement_reports_the_server_message() {
    let server = PostgresServer::start();
    let store = Orders::connect(&server.url(), "dropped", 2).await.unwrap();
    store.put(&1, &"one".to_owned()).await.unwrap();
    let (raw, connection) = tokio_postgres::connect(&server.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    raw.batch_execute("DROP TABLE dropped").await.unwrap();

    let error = store.get(&1).await.unwrap_err();
    assert!(matches!(error, PostgresError::Query(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains(r#"relation "dropped" does not exist (42P01)"#), "{message}");
    assert!(!message.contains("db error"), "{message}");
    assert_eq!(driver_error(&error).code(), Some(&tokio_postgres::error::SqlState::UNDEFINED_TABLE));

    // A value (stored as JSON) that breaks a constraint: the server's detail comes along.
    raw.batch_execute(
        "CREATE TABLE checked (key bytea PRIMARY KEY, value text NOT NULL CHECK (value NOT LIKE '%bad%'))",
    )
    .await
    .unwrap();
    let store = Orders::connect(&server.url(), "checked", 1).await.unwrap();
    let error = store.put(&1, &"bad".to_owned()).await.unwrap_err();
    let message = error.to_string();
    assert!(message.contains(r#"violates check constraint "checked_value_check" (23514)"#), "{message}");
    assert!(message.contains("Failing row contains"), "{message}");
}
