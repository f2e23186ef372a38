//! Instances in separate OS processes: this test binary runs itself again as a child instance
//! (`child_instance`, which does nothing unless `ZDDM_ROLE` is set), over the same SQLite files or
//! the same PostgreSQL and Redis servers as the parent.
//!
//! - A child crashes (`abort`) between writing OLD and NEW; the parent, another instance, must
//!   not serve NEW's older value. Today's `Proxy` is the control and must.
//! - Several children hammer the same keys at once and are killed at random moments; afterwards,
//!   everything NEW would serve must be what OLD holds.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use zddm::versioned::{
    Lookup, PostgresSource, RedisTarget, Source, SqliteSource, SqliteTarget, Target, VersionedProxy,
};
use zddm::{Gate, Proxy, Rate, SqliteStore};
use zddm_suite::servers::{PostgresServer, RedisServer};
use zddm_suite::stall::{Call, Stall};

const KEY: u64 = 7;
const KEYS: u64 = 16;
const GRACE: Duration = Duration::from_millis(400);

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("the parent sets {name}"))
}

/// Runs this binary as a child instance with `role` and `vars`; returns its exit status.
fn spawn(role: &str, vars: &[(&str, String)]) -> std::process::Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command.args(["--exact", "child_instance", "--nocapture", "--test-threads=1"]).env("ZDDM_ROLE", role);
    for (name, value) in vars {
        command.env(name, value);
    }
    command.stdout(Stdio::null()).stderr(Stdio::inherit()).spawn().expect("the test binary runs again")
}

/// The child side: nothing unless run by [`spawn`].
#[test]
fn child_instance() {
    let Ok(role) = std::env::var("ZDDM_ROLE") else { return };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        match role.as_str() {
            "crash-versioned" => {
                let old = Arc::new(Stall::new(SqliteSource::<u64, u64>::open(env("OLD"), "entries").unwrap()));
                let new = Arc::new(Stall::new(SqliteTarget::<u64, u64>::open(env("NEW"), "entries").unwrap()));
                let proxy =
                    VersionedProxy::builder(old, new.clone(), Gate::new("p", Rate::ALL)).grace(GRACE).build().unwrap();
                proxy.put(&KEY, &1).await.unwrap();
                crash_at(new.pause_next(Call::Apply), proxy.put(&KEY, &2)).await;
            }
            "crash-control" => {
                let old = Arc::new(Stall::new(SqliteStore::<u64, u64>::open(env("OLD"), "entries").unwrap()));
                let new = Arc::new(Stall::new(SqliteStore::<u64, u64>::open(env("NEW"), "entries").unwrap()));
                let proxy = Proxy::new(old, new.clone(), Gate::new("p", Rate::ALL));
                proxy.put(&KEY, &1).await.unwrap();
                crash_at(new.pause_next(Call::Put), proxy.put(&KEY, &2)).await;
            }
            "hammer-sqlite" => {
                let old = SqliteSource::<u64, u64>::open(env("OLD"), "entries").unwrap();
                let new = SqliteTarget::<u64, u64>::open(env("NEW"), "entries").unwrap();
                hammer(old, new).await;
            }
            "hammer-postgres-redis" => {
                let old = PostgresSource::<u64, u64>::connect(&env("PG"), "entries", 2).await.unwrap();
                let new = RedisTarget::<u64, u64>::connect(&env("REDIS"), "entries").await.unwrap();
                hammer(old, new).await;
            }
            other => panic!("unknown role {other}"),
        }
    });
}

/// Runs `write` until it reaches its paused NEW call, then dies on the spot.
async fn crash_at(pause: zddm_suite::faults::Pause, write: impl std::future::Future) {
    tokio::select! {
        biased;
        _ = write => panic!("the write finished without reaching NEW"),
        () = pause.reached() => std::process::abort(),
    }
}

/// Random writes, deletes and reads of a few keys, forever (the parent kills the process).
async fn hammer<O: Source<u64, u64>, N: Target<u64, u64>>(old: O, new: N) {
    // The default grace: the marks of killed children stay, and the check skips pending keys.
    let proxy = VersionedProxy::new(old, new, Gate::new("p", Rate::ALL));
    let mut x = u64::from(std::process::id());
    loop {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let key = (x >> 33) % KEYS;
        let _ = match (x >> 20) % 5 {
            0 => proxy.delete(&key).await,
            1 | 2 => proxy.put(&key, &(x >> 40)).await,
            _ => proxy.get(&key).await.map(drop),
        };
    }
}

/// Whatever NEW would serve for any key is what OLD holds.
async fn agree<O: Source<u64, u64>, N: Target<u64, u64>>(old: &O, new: &N) -> Vec<String> {
    let mut out = Vec::new();
    for key in 0..KEYS {
        let in_old = old.get(&key).await.unwrap().map(|found| found.value);
        match new.lookup(&key).await.unwrap() {
            Lookup::Hit(value) if Some(value) != in_old => out.push(format!("key {key}: NEW {value}, OLD {in_old:?}")),
            Lookup::Deleted if in_old.is_some() => out.push(format!("key {key}: NEW deleted, OLD {in_old:?}")),
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "current_thread")]
async fn a_process_that_dies_between_old_and_new_leaves_nothing_stale_to_serve() {
    let dir = tempfile::tempdir().unwrap();
    let files = |name: &str| {
        [("OLD", dir.path().join(format!("{name}-old.db"))), ("NEW", dir.path().join(format!("{name}-new.db")))]
            .map(|(var, path)| (var, path.display().to_string()))
    };

    let paths = files("versioned");
    assert!(!spawn("crash-versioned", &paths).wait().unwrap().success(), "the child died mid-write");
    let old = SqliteSource::<u64, u64>::open(&paths[0].1, "entries").unwrap();
    let new = SqliteTarget::<u64, u64>::open(&paths[1].1, "entries").unwrap();
    // Behind the fault wrapper, which reports no store timeout: a grace shorter than SQLite's lock
    // timeout, to see the repair within the test (nothing else writes these files now).
    let (old, new) = (Stall::new(old), Stall::new(new));
    let survivor = VersionedProxy::builder(old, new, Gate::new("p", Rate::ALL)).grace(GRACE).build().unwrap();
    assert_eq!(survivor.get(&KEY).await.unwrap(), Some(2), "OLD took the dead instance's write");
    tokio::time::sleep(GRACE + Duration::from_millis(100)).await;
    assert_eq!(survivor.get(&KEY).await.unwrap(), Some(2));
    assert_eq!(survivor.stats().repairs, 1, "repaired once the dead writer's grace ran out");

    let paths = files("control");
    assert!(!spawn("crash-control", &paths).wait().unwrap().success());
    let old = SqliteStore::<u64, u64>::open(&paths[0].1, "entries").unwrap();
    let new = SqliteStore::<u64, u64>::open(&paths[1].1, "entries").unwrap();
    let survivor = Proxy::new(old, new, Gate::new("p", Rate::ALL));
    assert_eq!(survivor.get(&KEY).await.unwrap(), Some(1), "the control serves the dead write's predecessor");
}

/// Starts `count` hammering children with `vars`, kills one at a time at random moments (starting
/// a new one each time), then all.
async fn hammer_and_kill(role: &str, vars: &[(&str, String)], count: usize, kills: usize) {
    let mut children: Vec<_> = (0..count).map(|_| spawn(role, vars)).collect();
    let mut x = 12345u64;
    for _ in 0..kills {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
        tokio::time::sleep(Duration::from_millis(150 + (x >> 33) % 300)).await;
        let victim = (x >> 40) as usize % children.len();
        let _ = children[victim].kill();
        let _ = children[victim].wait();
        children[victim] = spawn(role, vars);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn processes_killed_at_random_leave_new_in_step_with_old_over_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (old_path, new_path) = (dir.path().join("old.db"), dir.path().join("new.db"));
    let vars = [("OLD", old_path.display().to_string()), ("NEW", new_path.display().to_string())];
    // Created before the children start, so none of them races to create the tables.
    let old = SqliteSource::<u64, u64>::open(&old_path, "entries").unwrap();
    let new = SqliteTarget::<u64, u64>::open(&new_path, "entries").unwrap();
    hammer_and_kill("hammer-sqlite", &vars, 3, 6).await;
    assert_eq!(agree(&old, &new).await, Vec::<String>::new());
    let touched = new.slots().unwrap().len();
    assert!(touched > 0, "the children wrote through NEW");
}

#[tokio::test(flavor = "current_thread")]
async fn processes_killed_at_random_leave_new_in_step_with_old_over_postgres_to_redis() {
    let (pg, redis) = (PostgresServer::start(), RedisServer::start());
    let vars = [("PG", pg.url()), ("REDIS", redis.url())];
    let old = PostgresSource::<u64, u64>::connect(&pg.url(), "entries", 1).await.unwrap();
    let new = RedisTarget::<u64, u64>::connect(&redis.url(), "entries").await.unwrap();
    hammer_and_kill("hammer-postgres-redis", &vars, 3, 6).await;
    assert_eq!(agree(&old, &new).await, Vec::<String>::new());
}
