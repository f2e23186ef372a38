//! `PostgresStore::connect` against a real PostgreSQL: many instances starting at once on a fresh
//! table, and errors that name their cause (the server's message and SQLSTATE, the address,
//! database and user tried, what to check) without ever showing a password — one test per message.
//! The password test covers every connection error of both networked adapters (PostgreSQL and
//! Redis).

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use zddm::{Gate, PostgresError, PostgresStore, Proxy, Rate, RedisError, RedisStore, Side, Store};
use zddm_suite::servers::{PostgresServer, RedisServer};

type Orders = PostgresStore<u64, String>;

/// `host:port` of the server, and its URL for the database `dbname`.
fn address_and_url(server: &PostgresServer, dbname: &str) -> (String, String) {
    let url = server.url();
    let (base, _) = url.rsplit_once('/').expect("a database in the URL");
    let (_, address) = base.rsplit_once('@').expect("a user in the URL");
    (address.to_owned(), format!("{base}/{dbname}"))
}

/// The driver's error behind a PostgreSQL error.
fn driver_error(error: &PostgresError) -> &tokio_postgres::Error {
    error.driver_error().unwrap_or_else(|| panic!("no driver error behind {error:?}"))
}

/// The message of a connection error, once checked to say its cause once (in the message, with no
/// `source()` to repeat it) and to keep the driver's error for code.
fn connect_message(error: &PostgresError) -> String {
    assert!(matches!(error, PostgresError::Connect(_)), "{error:?}");
    assert!(error.source().is_none(), "the cause is in the message, not repeated by source(): {error:?}");
    assert!(error.driver_error().is_some(), "the driver's error stays reachable: {error:?}");
    let message = error.to_string();
    assert!(!message.contains("db error") && !message.contains("creating a new object"), "{message}");
    message
}

/// `secret` appears nowhere in `error`: not in its message, its `Debug`, nor in any error of its
/// `source()` chain.
fn assert_hidden(secret: &str, what: &str, error: &(dyn std::error::Error + 'static)) {
    let mut layer = Some(error);
    while let Some(error) = layer {
        let (display, debug) = (error.to_string(), format!("{error:?}"));
        assert!(!display.contains(secret), "{what}: the password shows in {display}");
        assert!(!debug.contains(secret), "{what}: the password shows in {debug}");
        layer = error.source();
    }
}

/// A server where `postgres` is trusted and every other user logs in with a password: the user
/// `ada`, password `right-secret`. Its pg_hba.conf is rewritten through SQL (`COPY … TO` the
/// server's own file, as superuser), then reloaded.
async fn server_with_passwords() -> PostgresServer {
    let server = PostgresServer::start();
    let (client, connection) = tokio_postgres::connect(&server.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .batch_execute("CREATE ROLE ada LOGIN PASSWORD 'right-secret'; GRANT CREATE ON SCHEMA public TO ada")
        .await
        .unwrap();
    let hba: String = client.query_one("SHOW hba_file", &[]).await.unwrap().get(0);
    let lines = "ARRAY['local all all trust', 'host all postgres 127.0.0.1/32 trust', \
                 'host all all 127.0.0.1/32 scram-sha-256']";
    client.batch_execute(&format!("COPY (SELECT unnest({lines})) TO '{hba}'")).await.unwrap();
    client.batch_execute("SELECT pg_reload_conf()").await.unwrap();
    // The reload is asynchronous: wait until a wrong password is refused.
    let (address, _) = address_and_url(&server, "postgres");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let url = format!("postgres://ada:wrong@{address}/postgres");
        match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            Err(error) if error.code() == Some(&SqlState::INVALID_PASSWORD) => return server,
            _ if Instant::now() > deadline => panic!("pg_hba.conf was not reloaded within 10 s"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
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
    let message = connect_message(&error);
    assert!(message.contains(r#"database "no_such_db" does not exist (3D000)"#), "{message}");
    assert!(message.contains(&format!("at {address} (database \"no_such_db\", user \"postgres\")")), "{message}");
    assert!(message.contains("create the database"), "what to do: {message}");
    assert_eq!(message.matches("does not exist").count(), 1, "said once: {message}");
    assert_eq!(error.code(), Some(&SqlState::INVALID_CATALOG_NAME));
    assert_eq!(driver_error(&error).code(), Some(&SqlState::INVALID_CATALOG_NAME));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_user_is_named_with_the_server_address() {
    let server = PostgresServer::start();
    let (address, _) = address_and_url(&server, "postgres");
    let url = format!("postgres://nobody:secret@{address}/postgres");
    let error = Orders::connect(&url, "orders", 1).await.unwrap_err();
    let message = connect_message(&error);
    assert!(message.contains(r#"role "nobody" does not exist (28000)"#), "{message}");
    assert!(message.contains(&format!("at {address} (database \"postgres\", user \"nobody\")")), "{message}");
    assert!(message.contains("check the user"), "what to do: {message}");
    assert!(!message.contains("secret"), "{message}");
    assert_eq!(error.code(), Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_named_with_the_server_address_and_never_shown() {
    let server = server_with_passwords().await;
    let (address, _) = address_and_url(&server, "postgres");
    let url = format!("postgres://ada:wrong-secret@{address}/postgres");
    let error = Orders::connect(&url, "orders", 1).await.unwrap_err();
    let message = connect_message(&error);
    assert!(message.contains(r#"password authentication failed for user "ada" (28P01)"#), "{message}");
    assert!(message.contains(&format!("at {address} (database \"postgres\", user \"ada\")")), "{message}");
    assert!(message.contains("check the user and password"), "what to do: {message}");
    assert_hidden("wrong-secret", &url, &error);
    assert_eq!(error.code(), Some(&SqlState::INVALID_PASSWORD));
    // And the right password connects.
    let url = format!("postgres://ada:right-secret@{address}/postgres");
    let store = Orders::connect(&url, "orders", 1).await.unwrap();
    store.put(&1, &"one".to_owned()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_is_named_with_the_address_and_the_refusal() {
    let error = Orders::connect("postgres://u:secret@127.0.0.1:1/orders_db", "orders", 1).await.unwrap_err();
    let message = connect_message(&error);
    assert!(
        message.starts_with("cannot connect to PostgreSQL at 127.0.0.1:1 (database \"orders_db\", user \"u\"): "),
        "{message}"
    );
    assert!(message.contains("Connection refused"), "the operating system's cause: {message}");
    assert!(message.contains("check that PostgreSQL is running and listens on that host and port"), "{message}");
    assert_eq!(message.matches("refused").count(), 1, "said once: {message}");
    assert!(!message.contains("secret"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unresolvable_host_is_named_with_the_lookup_failure() {
    // `.invalid` never resolves (RFC 2606).
    let url = "postgres://u:secret@no-such-host.invalid:5433/orders_db";
    let error = Orders::connect(url, "orders", 1).await.unwrap_err();
    let message = connect_message(&error);
    assert!(message.contains("at no-such-host.invalid:5433 (database \"orders_db\", user \"u\")"), "{message}");
    assert!(message.contains("lookup") || message.contains("resolve"), "the resolver's cause: {message}");
    assert!(message.contains("check the host and port"), "what to do: {message}");
    assert!(!message.contains("secret"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_url_is_shown_without_its_password_with_the_parsers_reason() {
    let error = Orders::connect("postgres://u:secret@127.0.0.1:notaport/x", "orders", 1).await.unwrap_err();
    assert!(matches!(error, PostgresError::Url { .. }), "{error:?}");
    assert!(error.source().is_none(), "the cause is in the message: {error:?}");
    assert!(error.driver_error().is_some());
    assert_eq!(
        error.to_string(),
        "\"postgres://u:***@127.0.0.1:notaport/x\" is not a PostgreSQL connection string (invalid connection \
         string: invalid value for option `port`): write postgres://user:password@host:port/database"
    );
}

/// A store's failure through the proxy names the side, and carries the store's message whole:
/// `to_string()` alone says where and why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_error_names_the_side_and_carries_the_servers_cause() {
    let server = PostgresServer::start();
    let (address, _) = address_and_url(&server, "postgres");
    let old = Arc::new(Orders::connect(&server.url(), "orders", 1).await.unwrap());
    let new = Arc::new(zddm::MemoryStore::<u64, String>::new());
    let proxy = Proxy::new(old, new, Gate::new("orders", Rate::ALL));
    drop(server); // OLD goes away.

    let error = proxy.get(&1).await.unwrap_err();
    assert_eq!(error.side(), Side::Old);
    let message = error.to_string();
    assert!(message.starts_with("get on the OLD store failed: "), "{message}");
    assert!(message.contains(&address), "the server: {message}");
    assert!(error.source().is_none(), "said once, in the message: {error:?}");
    let store = error.store_error().downcast_ref::<PostgresError>().expect("the store's own error");
    assert!(message.ends_with(&store.to_string()), "{message}");
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
        let display = connect_message(&error);
        assert!(display.contains("127.0.0.1:1"), "{url}: {display}");
        assert!(display.contains("refused"), "the cause is kept: {display}");
        assert_hidden("secret", url, &error);
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
        let display = error.to_string();
        assert!(display.contains(shown), "{url}: {display}");
        for piece in ["secret", "cret", "ret'"] {
            assert_hidden(piece, url, &error);
        }
        assert!(error.driver_error().is_some(), "{url}: the driver's error stays reachable");
    }

    // Unresolvable, refused by the server (no such user; a wrong password), and the same through
    // the proxy's error.
    let server = server_with_passwords().await;
    let (address, _) = address_and_url(&server, "postgres");
    for url in [
        "postgres://u:secret@no-such-host.invalid:5432/x".to_owned(),
        format!("postgres://nobody:secret@{address}/postgres"),
        format!("postgres://ada:secret@{address}/postgres"),
        format!("postgres://ada@{address}/postgres?password=secret"),
        format!("host=127.0.0.1 port={} user=ada password=secret dbname=postgres", address.rsplit_once(':').unwrap().1),
    ] {
        let error = Orders::connect(&url, "orders", 1).await.unwrap_err();
        connect_message(&error);
        assert_hidden("secret", &url, &error);
        let error = zddm_error(Side::New, error);
        assert_hidden("secret", &url, &error);
    }

    // Redis: a malformed URL, nothing listening, an unresolvable host, a wrong password, and a
    // password given to a server that has none.
    let redis = RedisServer::start();
    let redis_address = redis.url().trim_start_matches("redis://").trim_end_matches("/0").to_owned();
    require_password(&redis, "right-secret").await;
    let open = RedisServer::start();
    let open_address = open.url().trim_start_matches("redis://").trim_end_matches("/0").to_owned();
    for url in [
        "redis://:secret@127.0.0.1:notaport/0".to_owned(),
        "redis://u:secret@127.0.0.1:6379/notadb".to_owned(),
        "redis+unix:///no/such.sock?db=x&pass=secret".to_owned(),
        "redis://:secret@127.0.0.1:1/0".to_owned(),
        "redis://u:secret@no-such-host.invalid:6379/0".to_owned(),
        "redis+unix:///no/such.sock?pass=secret".to_owned(),
        format!("redis://:secret@{redis_address}/0"),
        format!("redis://default:secret@{redis_address}/0"),
        format!("redis://:secret@{open_address}/0"),
    ] {
        let error = RedisStore::<u64, String>::connect(&url, "orders").await.unwrap_err();
        assert!(matches!(error, RedisError::Url { .. } | RedisError::Connect { .. }), "{url}: {error:?}");
        assert!(error.to_string().contains("***"), "the URL is shown, its password replaced: {error}");
        assert_hidden("secret", &url, &error);
        let error = zddm_error(Side::Old, error);
        assert_hidden("secret", &url, &error);
    }
}

/// `error` as the proxy reports it.
fn zddm_error<E: std::error::Error + Send + Sync + 'static>(side: Side, error: E) -> zddm::Error {
    zddm::Error::Store { side, op: zddm::Op::Get, source: Box::new(error) }
}

/// Makes `server` require `password` (for the default user): `CONFIG SET` as an inline command.
async fn require_password(server: &RedisServer, password: &str) {
    use std::io::{Read, Write};
    let address = server.url().trim_start_matches("redis://").trim_end_matches("/0").to_owned();
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.write_all(format!("CONFIG SET requirepass {password}\r\n").as_bytes()).unwrap();
    let mut reply = [0; 5];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+OK\r\n");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_table_removes_the_stores_table_and_no_other() {
    let server = PostgresServer::start();
    let (trial, kept) = (
        Orders::connect(&server.url(), "trial", 1).await.unwrap(),
        Orders::connect(&server.url(), "kept", 1).await.unwrap(),
    );
    trial.put(&1, &"one".to_string()).await.unwrap();
    kept.put(&1, &"one".to_string()).await.unwrap();
    trial.drop_table().await.unwrap();
    let (client, connection) = tokio_postgres::connect(&server.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let tables: Vec<String> = client
        .query("SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(tables, vec!["kept".to_string()]);
    assert!(trial.get(&1).await.is_err(), "the dropped table is gone");
}
