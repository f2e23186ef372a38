//! One conformance suite for every store adapter: the same checks, run against `MemoryStore` and
//! `SqliteStore` (in memory and on disk), and against every later adapter. Then what only SQLite has:
//! table-shape checks, undecodable values, persistence and the ordered key scan.

use serde::{Deserialize, Serialize};
use zddm::{
    Gate, MemoryStore, MigrationKey, PostgresError, PostgresStore, Proxy, Rate, RedisError, RedisStore, SqliteError,
    SqliteStore, Store,
};
use zddm_suite::servers::{PostgresServer, RedisServer};

#[derive(MigrationKey, Debug, Clone, PartialEq)]
struct OrderKey {
    tenant: u32,
    number: String,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Order {
    items: u32,
    note: String,
}

fn key(tenant: u32, number: &str) -> OrderKey {
    OrderKey { tenant, number: number.to_owned() }
}

fn order(items: u32) -> Order {
    Order { items, note: format!("{items} items, ünïcödé") }
}

/// Everything a store must do for the proxy.
async fn conformance<S: Store<OrderKey, Order>>(store: S, name: &str) {
    let (a, b) = (key(1, "A-1"), key(1, "A-10"));
    assert_eq!(store.get(&a).await.unwrap(), None, "{name}: absent key");
    store.put(&a, &order(1)).await.unwrap();
    assert_eq!(store.get(&a).await.unwrap(), Some(order(1)), "{name}: put then get");
    assert_eq!(store.get(&b).await.unwrap(), None, "{name}: a key that extends another is another key");
    store.put(&a, &order(2)).await.unwrap();
    assert_eq!(store.get(&a).await.unwrap(), Some(order(2)), "{name}: put replaces");

    assert!(!store.insert_if_absent(&a, &order(3)).await.unwrap(), "{name}: the insert sees the key");
    assert_eq!(store.get(&a).await.unwrap(), Some(order(2)), "{name}: a refused insert changes nothing");
    assert!(store.insert_if_absent(&b, &order(4)).await.unwrap(), "{name}: insert of an absent key");
    assert_eq!(store.get(&b).await.unwrap(), Some(order(4)));

    store.delete(&a).await.unwrap();
    assert_eq!(store.get(&a).await.unwrap(), None, "{name}: delete");
    store.delete(&a).await.unwrap();
    assert_eq!(store.get(&b).await.unwrap(), Some(order(4)), "{name}: deleting one key leaves the other");
    assert!(store.insert_if_absent(&a, &order(5)).await.unwrap(), "{name}: a deleted key is absent again");

    let big = Order { items: 7, note: "x".repeat(100_000) };
    let odd = key(u32::MAX, "日本-\u{0}-é");
    store.put(&odd, &big).await.unwrap();
    assert_eq!(store.get(&odd).await.unwrap(), Some(big), "{name}: large values and unusual keys");
}

/// The proxy over two stores of this kind keeps them consistent, through a gate ramp.
async fn proxy_over<O: Store<OrderKey, Order>, N: Store<OrderKey, Order>>(old: O, new: N, name: &str) {
    let keys: Vec<OrderKey> = (0..300).map(|i| key(i % 7, &format!("N-{i}"))).collect();
    for (i, k) in keys.iter().enumerate() {
        old.put(k, &order(i as u32)).await.unwrap();
    }
    let proxy = Proxy::new(old, new, Gate::new("conformance", Rate::NONE));
    for percent in ["0%", "30%", "100%"] {
        proxy.gate().set_rate(percent.parse().unwrap()).unwrap();
        for (i, k) in keys.iter().enumerate() {
            if i % 5 == 0 {
                proxy.put(k, &order(1_000 + i as u32)).await.unwrap();
            }
            let expected = if i % 5 == 0 { 1_000 + i as u32 } else { i as u32 };
            assert_eq!(proxy.get(k).await.unwrap(), Some(order(expected)), "{name} at {percent}");
        }
    }
    for k in &keys {
        assert_eq!(proxy.new_store().get(k).await.unwrap(), proxy.old().get(k).await.unwrap(), "{name}: NEW = OLD");
    }
    let before = proxy.stats();
    for k in &keys {
        proxy.get(k).await.unwrap();
    }
    assert_eq!(proxy.stats().since(&before).reads_from_old, 0, "{name}: a last pass reads nothing from OLD");
}

/// The batch forms each real adapter has besides [`Store`] (for backfill and seeding).
trait Batches: Store<OrderKey, Order> {
    async fn put_many(&self, entries: &[(&OrderKey, &Order)]);
    async fn get_many(&self, keys: &[&OrderKey]) -> Vec<Option<Order>>;
}

impl Batches for SqliteStore<OrderKey, Order> {
    async fn put_many(&self, entries: &[(&OrderKey, &Order)]) {
        SqliteStore::put_many(self, entries).await.unwrap()
    }
    async fn get_many(&self, keys: &[&OrderKey]) -> Vec<Option<Order>> {
        SqliteStore::get_many(self, keys).await.unwrap()
    }
}

impl Batches for PostgresStore<OrderKey, Order> {
    async fn put_many(&self, entries: &[(&OrderKey, &Order)]) {
        PostgresStore::put_many(self, entries).await.unwrap()
    }
    async fn get_many(&self, keys: &[&OrderKey]) -> Vec<Option<Order>> {
        PostgresStore::get_many(self, keys).await.unwrap()
    }
}

impl Batches for RedisStore<OrderKey, Order> {
    async fn put_many(&self, entries: &[(&OrderKey, &Order)]) {
        RedisStore::put_many(self, entries).await.unwrap()
    }
    async fn get_many(&self, keys: &[&OrderKey]) -> Vec<Option<Order>> {
        RedisStore::get_many(self, keys).await.unwrap()
    }
}

/// Batch writes and reads agree with the single-key operations.
async fn batches<S: Batches>(store: S, name: &str) {
    store.put_many(&[]).await;
    assert_eq!(store.get_many(&[]).await, Vec::<Option<Order>>::new(), "{name}: empty batch");
    let keys: Vec<OrderKey> = (0..40).map(|i| key(i % 3, &format!("B-{i}"))).collect();
    let orders: Vec<Order> = (0..40).map(order).collect();
    store.put(&keys[0], &order(999)).await.unwrap();
    // A key twice in one batch: the last entry wins, as with one put after another.
    let mut entries: Vec<(&OrderKey, &Order)> = keys.iter().zip(&orders).collect();
    let twice = order(4_000);
    entries.insert(3, (&keys[5], &twice));
    store.put_many(&entries).await;
    for (k, o) in keys.iter().zip(&orders) {
        assert_eq!(store.get(k).await.unwrap().as_ref(), Some(o), "{name}: put_many then get of {k:?}");
    }
    let absent = key(7, "absent");
    let asked = [&keys[9], &absent, &keys[0], &keys[9]];
    let expected = vec![Some(order(9)), None, Some(order(0)), Some(order(9))];
    assert_eq!(store.get_many(&asked).await, expected, "{name}: in the order asked, absent keys as None");
}

async fn postgres(server: &PostgresServer, table: &str) -> PostgresStore<OrderKey, Order> {
    PostgresStore::connect(&server.url(), table, 4).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_conforms() {
    let server = PostgresServer::start();
    conformance(postgres(&server, "conformance").await, "postgres").await;
    batches(postgres(&server, "batches").await, "postgres").await;
    proxy_over(postgres(&server, "old_orders").await, postgres(&server, "new_orders").await, "postgres to postgres")
        .await;
    let redis_server = RedisServer::start();
    proxy_over(postgres(&server, "to_redis").await, redis(&redis_server, "from_postgres").await, "postgres to redis")
        .await;
    let dir = tempfile::tempdir().unwrap();
    proxy_over(sqlite_file(&dir, "to-postgres"), postgres(&server, "from_sqlite").await, "sqlite to postgres").await;

    // Ordered scan, and errors that say what is wrong.
    let store = postgres(&server, "scan").await;
    for i in 0..30u32 {
        store.put(&key(i % 3, &format!("P-{i}")), &order(i)).await.unwrap();
    }
    let (mut seen, mut after) = (Vec::new(), None::<Vec<u8>>);
    loop {
        let page = store.scan(after.as_deref(), 7).await.unwrap();
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        seen.extend(page.into_iter().map(|(k, _)| k));
    }
    let mut expected: Vec<Vec<u8>> = (0..30u32).map(|i| key(i % 3, &format!("P-{i}")).key_bytes()).collect();
    expected.sort();
    assert_eq!(seen, expected, "every key once, in canonical byte order");
    assert_eq!(store.len().await.unwrap(), 30);

    let error = PostgresStore::<OrderKey, Order>::connect(&server.url(), "Orders", 1).await.unwrap_err();
    assert!(matches!(error, PostgresError::TableName { .. }), "{error}");

    // A table of another shape is refused; a value that does not deserialize names its key.
    let (raw, connection) = tokio_postgres::connect(&server.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    raw.batch_execute("CREATE TABLE legacy_rows (id integer PRIMARY KEY, body text)").await.unwrap();
    let error = PostgresStore::<OrderKey, Order>::connect(&server.url(), "legacy_rows", 1).await.unwrap_err();
    assert!(matches!(error, PostgresError::TableShape { .. }), "{error}");
    assert!(error.to_string().contains("(id integer, body text)"), "{error}");
    raw.execute("INSERT INTO scan (key, value) VALUES ($1, $2)", &[&key(9, "bad").key_bytes(), &"[1, 2]"])
        .await
        .unwrap();
    let error = store.get(&key(9, "bad")).await.unwrap_err();
    assert!(matches!(error, PostgresError::Decode(_)), "{error}");
    let error = PostgresStore::<OrderKey, Order>::connect("not a url", "orders", 1).await.unwrap_err();
    assert!(matches!(error, PostgresError::Url { .. }), "{error}");
    let error =
        PostgresStore::<OrderKey, Order>::connect("postgres://postgres@127.0.0.1:1/x", "orders", 1).await.unwrap_err();
    assert!(matches!(error, PostgresError::Connect(_)), "{error}");
}

async fn redis(server: &RedisServer, prefix: &str) -> RedisStore<OrderKey, Order> {
    RedisStore::connect(&server.url(), prefix).await.unwrap()
}

fn sqlite_file(dir: &tempfile::TempDir, name: &str) -> SqliteStore<OrderKey, Order> {
    SqliteStore::open(dir.path().join(format!("{name}.db")), "orders").unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn memory_store_conforms() {
    conformance(MemoryStore::new(), "memory").await;
    proxy_over(MemoryStore::new(), MemoryStore::new(), "memory").await;
}

#[tokio::test(flavor = "current_thread")]
async fn sqlite_store_conforms() {
    conformance(SqliteStore::open_in_memory("orders").unwrap(), "sqlite in memory").await;
    let dir = tempfile::tempdir().unwrap();
    conformance(sqlite_file(&dir, "conformance"), "sqlite file").await;
    batches(sqlite_file(&dir, "batches"), "sqlite").await;
    proxy_over(sqlite_file(&dir, "old"), sqlite_file(&dir, "new"), "sqlite to sqlite").await;
}

#[tokio::test(flavor = "current_thread")]
async fn redis_store_conforms() {
    let server = RedisServer::start();
    conformance(redis(&server, "conformance").await, "redis").await;
    batches(redis(&server, "batches").await, "redis").await;
    proxy_over(redis(&server, "old").await, redis(&server, "new").await, "redis to redis").await;
    // Two stores on one server do not see each other's keys.
    let (a, b) = (redis(&server, "tenant_a").await, redis(&server, "tenant_b").await);
    a.put(&key(1, "X"), &order(1)).await.unwrap();
    assert_eq!(b.get(&key(1, "X")).await.unwrap(), None);
}

#[tokio::test(flavor = "current_thread")]
async fn redis_scans_in_order_and_reports_errors_clearly() {
    let server = RedisServer::start();
    let store = RedisStore::<OrderKey, Order>::connect(&server.url(), "scan").await.unwrap();
    let keys: Vec<OrderKey> = (0..40).map(|i| key(i % 4, &format!("R-{i}"))).collect();
    for k in &keys {
        store.put(k, &order(k.tenant)).await.unwrap();
    }
    store.delete(&keys[3]).await.unwrap();
    assert_eq!(store.len().await.unwrap(), 39, "the index follows deletes");
    let (mut seen, mut after) = (Vec::new(), None::<Vec<u8>>);
    loop {
        let page = store.scan(after.as_deref(), 6).await.unwrap();
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        seen.extend(page.into_iter().map(|(k, _)| k));
    }
    let mut expected: Vec<Vec<u8>> = keys.iter().filter(|k| **k != keys[3]).map(|k| k.key_bytes()).collect();
    expected.sort();
    assert_eq!(seen, expected, "every key once, in canonical byte order");

    let error = RedisStore::<OrderKey, Order>::connect(&server.url(), "a:b").await.unwrap_err();
    assert!(matches!(error, RedisError::Prefix { .. }), "{error}");
    let error = RedisStore::<OrderKey, Order>::connect("postgres://nope", "x").await.unwrap_err();
    assert!(matches!(error, RedisError::Url { .. }), "{error}");
    drop(server);
    let error = RedisStore::<OrderKey, Order>::connect("redis://127.0.0.1:1/0", "x").await.unwrap_err();
    assert!(matches!(error, RedisError::Connect { .. }), "{error}");
    assert!(error.to_string().contains("127.0.0.1:1"), "the error names the server: {error}");
}

#[tokio::test(flavor = "current_thread")]
async fn mixed_stores_conform() {
    let dir = tempfile::tempdir().unwrap();
    // SQLite → memory and back: the proxy needs nothing of the two stores but `Store`.
    let proxy = Proxy::new(sqlite_file(&dir, "mixed-old"), MemoryStore::new(), Gate::new("mixed", Rate::ALL));
    proxy.old().put(&key(1, "M"), &order(1)).await.unwrap();
    assert_eq!(proxy.get(&key(1, "M")).await.unwrap(), Some(order(1)));
    assert_eq!(Store::get(proxy.new_store(), &key(1, "M")).await.unwrap(), Some(order(1)));

    // SQLite → Redis, through a ramp, with writes and reads.
    let server = RedisServer::start();
    proxy_over(sqlite_file(&dir, "to-redis"), redis(&server, "from_sqlite").await, "sqlite to redis").await;
}

#[test]
fn sqlite_persists_across_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("persist.db");
    {
        let store = SqliteStore::<OrderKey, Order>::open(&path, "orders").unwrap();
        zddm::block_on(store.put(&key(3, "P"), &order(3))).unwrap();
    }
    let store = SqliteStore::<OrderKey, Order>::open(&path, "orders").unwrap();
    assert_eq!(zddm::block_on(store.get(&key(3, "P"))).unwrap(), Some(order(3)));
    assert_eq!(zddm::block_on(store.len()).unwrap(), 1);
}

#[test]
fn sqlite_scans_keys_in_a_stable_order_page_by_page() {
    let store = SqliteStore::<OrderKey, Order>::open_in_memory("orders").unwrap();
    let keys: Vec<OrderKey> = (0..50).map(|i| key(i % 3, &format!("S-{i}"))).collect();
    let entries: Vec<(&OrderKey, Order)> = keys.iter().map(|k| (k, order(k.tenant))).collect();
    let refs: Vec<(&OrderKey, &Order)> = entries.iter().map(|(k, v)| (*k, v)).collect();
    zddm::block_on(store.put_many(&refs)).unwrap();

    let mut seen = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = zddm::block_on(store.scan(after.as_deref(), 7)).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 7);
        after = page.last().map(|(k, _)| k.clone());
        seen.extend(page.into_iter().map(|(k, _)| k));
    }
    let mut expected: Vec<Vec<u8>> = keys.iter().map(|k| k.key_bytes()).collect();
    expected.sort();
    assert_eq!(seen, expected, "every key once, in canonical byte order");

    let many = zddm::block_on(store.get_many(&[&keys[0], &key(9, "absent"), &keys[1]])).unwrap();
    assert_eq!(many, vec![Some(order(keys[0].tenant)), None, Some(order(keys[1].tenant))]);
}

#[test]
fn sqlite_refuses_bad_configuration_with_clear_errors() {
    let error = SqliteStore::<OrderKey, Order>::open_in_memory("orders; DROP TABLE x").unwrap_err();
    assert!(matches!(error, SqliteError::TableName { .. }), "{error}");
    assert!(error.to_string().contains("letters, digits and underscores"), "{error}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shape.db");
    let connection = rusqlite_connection(&path);
    connection.execute_batch("CREATE TABLE orders (id INTEGER PRIMARY KEY, body TEXT)").unwrap();
    drop(connection);
    let error = SqliteStore::<OrderKey, Order>::open(&path, "orders").unwrap_err();
    assert!(matches!(error, SqliteError::TableShape { .. }), "{error}");
    assert!(error.to_string().contains("(id INTEGER, body TEXT)"), "{error}");

    let error = SqliteStore::<OrderKey, Order>::open(dir.path().join("missing-dir/x.db"), "orders").unwrap_err();
    assert!(matches!(error, SqliteError::Open { .. }), "{error}");
}

#[test]
fn sqlite_reports_a_value_that_does_not_deserialize() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("decode.db");
    let store = SqliteStore::<OrderKey, Order>::open(&path, "orders").unwrap();
    let connection = rusqlite_connection(&path);
    connection
        .execute(
            "INSERT INTO orders (key, value) VALUES (?1, ?2)",
            (key(1, "bad").key_bytes(), "{\"items\": \"many\"}"),
        )
        .unwrap();
    let error = zddm::block_on(store.get(&key(1, "bad"))).unwrap_err();
    assert!(matches!(error, SqliteError::Decode { .. }), "{error}");
    let hex: String = key(1, "bad").key_bytes().iter().map(|b| format!("{b:02x}")).collect();
    assert!(error.to_string().contains(&hex), "the error names the key: {error}");
    // Through the proxy it is an OLD failure, saying so.
    let proxy = Proxy::new(store, MemoryStore::new(), Gate::new("decode", Rate::ALL));
    let error = zddm::block_on(proxy.get(&key(1, "bad"))).unwrap_err();
    assert_eq!((error.side(), error.op()), (zddm::Side::Old, zddm::Op::Get));
}

/// A second, raw connection to the same file, to set up what the store must reject.
fn rusqlite_connection(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}
