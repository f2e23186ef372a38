//! Every control record store behaves alike: the first record created wins, advancing is a
//! compare-and-set on the epoch, acknowledgements are one entry per instance on the store's
//! clock, a verification's epoch is kept and withdrawn, and a record zddm never wrote is reported,
//! not misread. Memory, SQLite, PostgreSQL and
//! Redis, two handles each (as two instances have).

use std::future::Future;
use std::time::Duration;

use zddm::fleet::{Control, Goal, MemoryControl, Plan, PostgresControl, Record, RedisControl, SqliteControl};
use zddm::{Phase, Rate};
use zddm_suite::servers::{PostgresServer, RedisServer};

fn record(salt: &str) -> Record {
    Record {
        salt: salt.into(),
        epoch: 0,
        plan: Plan::start(Phase::ReadThrough),
        goal: Goal { phase: Phase::ReadThrough, rate: Rate::NONE },
        verified: None,
    }
}

async fn conforms<C: Control, F: Future<Output = C>>(open: impl Fn() -> F, name: &str) {
    let (one, two) = (open().await, open().await);
    assert_eq!(one.open(&record("first")).await.unwrap(), record("first"), "{name}");
    assert_eq!(two.open(&record("second")).await.unwrap(), record("first"), "{name}: the first record wins");

    let half = Rate::percent(50.0).unwrap();
    let step = Plan { phase: Phase::ReadThrough, read: Rate::NONE, write: Rate::NONE, invalidate: half };
    assert!(one.advance(0, &step).await.unwrap(), "{name}");
    assert!(!two.advance(0, &step).await.unwrap(), "{name}: a second advance from the same epoch loses");
    let loaded = two.load().await.unwrap();
    assert_eq!((loaded.epoch, loaded.plan), (1, step), "{name}");
    let goal = Goal { phase: Phase::Live, rate: Rate::ALL };
    two.set_goal(&goal).await.unwrap();
    assert_eq!(one.load().await.unwrap().goal, goal, "{name}");

    one.acknowledge("a", 1).await.unwrap();
    two.acknowledge("b", 0).await.unwrap();
    std::thread::sleep(Duration::from_millis(5));
    let (mut members, now) = one.members().await.unwrap();
    members.sort_by(|x, y| x.instance.cmp(&y.instance));
    assert_eq!(members.iter().map(|m| (m.instance.as_str(), m.epoch)).collect::<Vec<_>>(), [("a", 1), ("b", 0)]);
    assert!(members.iter().all(|m| m.seen_ms <= now && now - m.seen_ms < 10_000), "{name}: {members:?} at {now}");
    two.leave("a").await.unwrap();
    let (members, _) = one.members().await.unwrap();
    assert_eq!(members.iter().map(|m| m.instance.as_str()).collect::<Vec<_>>(), ["b"], "{name}");

    // A verification's epoch is kept with the record, and withdrawn.
    one.set_verified(Some(1)).await.unwrap();
    assert_eq!(two.load().await.unwrap().verified, Some(1), "{name}");
    two.set_verified(Some(7)).await.unwrap();
    assert_eq!(one.load().await.unwrap().verified, Some(7), "{name}");
    one.set_verified(None).await.unwrap();
    assert_eq!(two.load().await.unwrap().verified, None, "{name}");
}

#[tokio::test(flavor = "current_thread")]
async fn memory_control_conforms() {
    let shared = MemoryControl::new();
    conforms(|| std::future::ready(shared.clone()), "memory").await;
}

#[tokio::test(flavor = "current_thread")]
async fn sqlite_control_conforms_and_reports_a_foreign_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("control.db");
    conforms(|| std::future::ready(SqliteControl::open(&path, "orders").unwrap()), "sqlite").await;
    let connection = rusqlite::Connection::open(&path).unwrap();
    connection.execute("UPDATE zddm_fleet SET phase = 'sideways' WHERE name = 'orders'", []).unwrap();
    let error = SqliteControl::open(&path, "orders").unwrap().load().await.unwrap_err();
    assert!(error.to_string().contains("\"sideways\""), "{error}");
}

#[tokio::test(flavor = "current_thread")]
async fn postgres_control_conforms() {
    let server = PostgresServer::start();
    let url = server.url();
    conforms(|| async { PostgresControl::connect(&url, "orders").await.unwrap() }, "postgres").await;
}

#[tokio::test(flavor = "current_thread")]
async fn redis_control_conforms() {
    let server = RedisServer::start();
    let url = server.url();
    conforms(|| async { RedisControl::connect(&url, "orders").await.unwrap() }, "redis").await;
}
