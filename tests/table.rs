//! An existing table of any schema as OLD (`PostgresTable`, `SqliteTable`): the application's
//! `orders` table, keyed by (tenant, id), with a version column its writers bump through a trigger,
//! is backfilled into a zddm NEW table, verified (its scan is not in canonical key order, so the
//! verifier looks keys up), and a writer that bypasses zddm is found and repaired.

use serde::{Deserialize, Serialize};
use zddm::backfill::{Backfill, MemoryCheckpoint};
use zddm::verify::Verify;
use zddm::versioned::{
    Lookup, PostgresTable, PostgresTarget, Scan, ScanSlots, Source, SqliteTable, SqliteTarget, TableError,
    VersionedProxy,
};
use zddm::{Gate, MigrationKey, Phase, Rate};
use zddm_suite::servers::PostgresServer;

/// The application's key: the same kinds as the key columns, in their order.
#[derive(Debug, Clone, PartialEq, MigrationKey)]
struct OrderKey {
    tenant: i64,
    id: String,
}

/// The row without its version: what NEW holds for each key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    tenant: i64,
    id: String,
    customer: String,
    total_cents: i64,
}

const SCHEMA: &str = "
    CREATE SEQUENCE orders_version_seq;
    CREATE TABLE orders (tenant bigint NOT NULL, id text NOT NULL, customer text NOT NULL, total_cents bigint NOT NULL,
        version bigint NOT NULL DEFAULT nextval('orders_version_seq'), PRIMARY KEY (tenant, id));
    CREATE FUNCTION orders_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN NEW.version := nextval('orders_version_seq'); RETURN NEW; END $$;
    CREATE TRIGGER orders_version BEFORE INSERT OR UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION orders_bump_version();";

async fn client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// The table's rows read through its key columns, backfilled into `new`, verified, then found
/// and repaired after `bypass` updates (1, "o7") and deletes (30, "o0") around zddm; `Complete`.
async fn backfilled_and_verified<O, N>(old: &O, new: &N, bypass: impl AsyncFnOnce(), name: &str)
where
    O: Scan<OrderKey, Order> + Source<OrderKey, Order, Error = TableError>,
    N: ScanSlots<OrderKey, Order>,
{
    assert!(!old.canonical());
    let key = OrderKey { tenant: -2, id: "o14".into() };
    let found = old.get(&key).await.unwrap().unwrap();
    assert_eq!(found.value, Order { tenant: -2, id: "o14".into(), customer: "c2".into(), total_cents: 200 }, "{name}");
    let page = old.scan(None, 7).await.unwrap();
    let again = old.scan(page.next.as_deref(), 200).await.unwrap();
    assert_eq!(page.entries.len() + again.entries.len(), 120, "{name}: a position resumes the scan");
    assert!(matches!(old.put(&key, &found.value).await, Err(TableError::ReadOnly { .. })), "{name}");

    let proxy = VersionedProxy::new(old, new, Gate::new("orders", Rate::ALL));
    proxy.set_phase(Phase::Live).unwrap();
    let done = Backfill::new(&proxy).batch(16).run(&MemoryCheckpoint::new(), tokio::time::sleep, |_| {}).await.unwrap();
    assert_eq!((done.scanned, done.copied), (120, 120), "{name}");
    assert_eq!(new.lookup(&key).await.unwrap(), Lookup::Hit(found.value.clone()), "{name}");
    let clean = Verify::new(&proxy).batch(16).run(tokio::time::sleep, |_| {}).await.unwrap();
    assert!(clean.clean() && clean.checked == 120, "{name}: {clean}");

    // Writers that bypass zddm: the trigger versions their update, not their delete.
    bypass().await;
    let report =
        Verify::new(&proxy).recheck_after(std::time::Duration::ZERO).run(tokio::time::sleep, |_| {}).await.unwrap();
    let keys = |examples: &[Vec<u8>]| examples.iter().map(|k| OrderKey::from_key_bytes(k).unwrap()).collect::<Vec<_>>();
    assert_eq!(keys(&report.differs.examples), [OrderKey { tenant: 1, id: "o7".into() }], "{name}: {report}");
    assert_eq!(keys(&report.extra.examples), [OrderKey { tenant: 30, id: "o0".into() }], "{name}: {report}");
    assert_eq!((report.repaired, report.unresolved.count), (2, 0), "{name}: {report}");
    let updated = new.lookup(&OrderKey { tenant: 1, id: "o7".into() }).await.unwrap();
    assert!(matches!(updated, Lookup::Hit(Order { total_cents: 1, .. })), "{name}: {updated:?}");
    assert_eq!(new.lookup(&OrderKey { tenant: 30, id: "o0".into() }).await.unwrap(), Lookup::Deleted, "{name}");
    let clean = Verify::new(&proxy).run(tokio::time::sleep, |_| {}).await.unwrap();
    assert!(clean.earns_complete(), "{name}: {clean}");
    proxy.set_phase(Phase::Complete).unwrap();
}

/// Negative tenants and ids of several lengths: the table's order is not canonical key order.
fn rows() -> impl Iterator<Item = (i64, String, String, i64)> {
    [-2i64, 1, 30]
        .into_iter()
        .flat_map(|tenant| (0..40i64).map(move |n| (tenant, format!("o{}", n * 7), format!("c{n}"), n * 100)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_table_is_backfilled_and_verified_through_its_key_columns() {
    let server = PostgresServer::start();
    let url = server.url();
    let app = client(&url).await;
    app.batch_execute(SCHEMA).await.unwrap();
    for (tenant, id, customer, total) in rows() {
        let insert = "INSERT INTO orders (tenant, id, customer, total_cents) VALUES ($1, $2, $3, $4)";
        app.execute(insert, &[&tenant, &id, &customer, &total]).await.unwrap();
    }
    let old = PostgresTable::<OrderKey, Order>::connect(
        &url,
        "orders",
        &["tenant", "id"],
        "version",
        "orders_version_seq",
        2,
    );
    let old = old.await.unwrap();
    let new = PostgresTarget::<OrderKey, Order>::connect(&url, "orders_v2", 2).await.unwrap();
    let bypass = async || {
        app.execute("UPDATE orders SET total_cents = 1 WHERE tenant = 1 AND id = 'o7'", &[]).await.unwrap();
        app.execute("DELETE FROM orders WHERE tenant = 30 AND id = 'o0'", &[]).await.unwrap();
    };
    backfilled_and_verified(&old, &new, bypass, "postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_columns_are_named_with_what_the_table_has() {
    let server = PostgresServer::start();
    let url = server.url();
    client(&url).await.batch_execute(SCHEMA).await.unwrap();
    let open = |keys: &'static [&'static str], version: &'static str| {
        let url = url.clone();
        async move {
            PostgresTable::<OrderKey, Order>::connect(&url, "orders", keys, version, "orders_version_seq", 1).await
        }
    };
    let error = open(&["tenant", "number"], "version").await.unwrap_err().to_string();
    assert!(error.contains("no column \"number\"") && error.contains("tenant bigint, id text"), "{error}");
    let error = open(&["tenant"], "revision").await.unwrap_err().to_string();
    assert!(error.contains("no column \"revision\""), "{error}");
    let error = open(&[], "version").await.unwrap_err().to_string();
    assert!(error.contains("at least one key column"), "{error}");
    let error = open(&["Tenant"], "version").await.unwrap_err().to_string();
    assert!(error.contains("not a plain identifier"), "{error}");
}

/// The same table in SQLite, under a name only a quoted identifier can take: SQLite has no
/// sequences, so the triggers bump the version from the table's row in `zddm_versions`, the
/// counter `SqliteTable` draws from.
const SQLITE_SCHEMA: &str = "
    CREATE TABLE zddm_versions (name TEXT PRIMARY KEY, last INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO zddm_versions VALUES ('shop orders', 0);
    CREATE TABLE \"shop orders\" (tenant INTEGER NOT NULL, id TEXT NOT NULL, customer TEXT NOT NULL,
        total_cents INTEGER NOT NULL, version INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (tenant, id));
    CREATE TRIGGER orders_version_insert AFTER INSERT ON \"shop orders\" BEGIN
        UPDATE zddm_versions SET last = last + 1 WHERE name = 'shop orders';
        UPDATE \"shop orders\" SET version = (SELECT last FROM zddm_versions WHERE name = 'shop orders')
            WHERE rowid = NEW.rowid;
    END;
    CREATE TRIGGER orders_version_update AFTER UPDATE OF tenant, id, customer, total_cents ON \"shop orders\" BEGIN
        UPDATE zddm_versions SET last = last + 1 WHERE name = 'shop orders';
        UPDATE \"shop orders\" SET version = (SELECT last FROM zddm_versions WHERE name = 'shop orders')
            WHERE rowid = NEW.rowid;
    END;";

#[tokio::test]
async fn an_existing_sqlite_table_is_backfilled_and_verified_through_its_key_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.db");
    let app = rusqlite::Connection::open(&path).unwrap();
    app.execute_batch(SQLITE_SCHEMA).unwrap();
    for (tenant, id, customer, total) in rows() {
        let insert = "INSERT INTO \"shop orders\" (tenant, id, customer, total_cents) VALUES (?1, ?2, ?3, ?4)";
        app.execute(insert, rusqlite::params![tenant, id, customer, total]).unwrap();
    }
    let old = SqliteTable::<OrderKey, Order>::open(&path, "shop orders", &["tenant", "id"], "version").unwrap();
    let key = OrderKey { tenant: -2, id: "o14".into() };
    assert_eq!(old.get(&key).await.unwrap().unwrap().version, 3, "the trigger's version");
    assert_eq!(old.next_version(&key).await.unwrap(), 121, "drawn from the writers' counter");
    let new = SqliteTarget::<OrderKey, Order>::open(dir.path().join("new.db"), "orders").unwrap();
    let bypass = async || {
        app.execute("UPDATE \"shop orders\" SET total_cents = 1 WHERE tenant = 1 AND id = 'o7'", []).unwrap();
        app.execute("DELETE FROM \"shop orders\" WHERE tenant = 30 AND id = 'o0'", []).unwrap();
    };
    backfilled_and_verified(&old, &new, bypass, "sqlite").await;
}

#[test]
fn wrong_sqlite_tables_and_columns_are_named_with_what_the_table_has() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.db");
    let app = rusqlite::Connection::open(&path).unwrap();
    app.execute_batch(SQLITE_SCHEMA).unwrap();
    app.execute_batch("CREATE TABLE prices (amount REAL PRIMARY KEY, version INTEGER)").unwrap();
    let open = |table: &str, keys: &[&str], version: &str| {
        SqliteTable::<OrderKey, Order>::open(&path, table, keys, version).unwrap_err().to_string()
    };
    let error = open("shop orders", &["tenant", "number"], "version");
    assert!(error.contains("no column \"number\"") && error.contains("tenant INTEGER, id TEXT"), "{error}");
    let error = open("shop orders", &["tenant"], "revision");
    assert!(error.contains("no column \"revision\""), "{error}");
    let error = open("shop orders", &[], "version");
    assert!(error.contains("at least one key column"), "{error}");
    let error = open("order", &["tenant"], "version");
    assert!(error.contains("no table \"order\""), "{error}");
    let error = open("prices", &["amount"], "version");
    assert!(error.contains("\"amount\" is REAL") && error.contains("integer, text, bytes"), "{error}");
    let error = SqliteTable::<OrderKey, Order>::open(dir.path().join("missing.db"), "shop orders", &["id"], "version")
        .unwrap_err()
        .to_string();
    assert!(error.contains("no database file") && error.contains("missing.db"), "{error}");
    assert!(!dir.path().join("missing.db").exists(), "nothing is created");

    // A row whose key column holds another kind than its declared type (SQLite allows it).
    app.execute("INSERT INTO \"shop orders\" (tenant, id, customer, total_cents) VALUES ('x', 'o1', 'c', 1)", [])
        .unwrap();
    let old = SqliteTable::<OrderKey, Order>::open(&path, "shop orders", &["tenant", "id"], "version").unwrap();
    let error = zddm::block_on(old.scan(None, 10)).unwrap_err().to_string();
    assert!(error.contains("key column \"tenant\" holds Text"), "{error}");
}
