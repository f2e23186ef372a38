//! What versioned mode costs on SQLite and PostgreSQL, writes and NEW hits, against unversioned
//! fleet mode (`CachedProxy`: the same three steps per write) and against the single-process
//! `Proxy` (two steps per write, and no guarantee across instances). And what following a fleet's plan costs on the request path:
//! a `VersionedProxy` in a fleet against one on its own gate, over memory stores, where nothing
//! but the routing differs.
//!
//! `cargo bench --bench versioned`; paired rounds and median ratios (`zddm_suite::paired`). Under
//! `cargo test` it runs two tiny rounds of each, as a check that it works.

use zddm::cached::{CachedProxy, PostgresCache, SqliteCache};
use zddm::fleet::{Fleet, FleetConfig, Goal, MemoryControl};
use zddm::versioned::{MemorySource, MemoryTarget, PostgresSource, PostgresTarget, SqliteSource, SqliteTarget};
use zddm::versioned::{Source, Target, VersionedProxy};
use zddm::{block_on, Gate, Phase, PostgresStore, Proxy, Rate, SqliteStore};
use zddm_suite::paired::{compare, keys, print, reads, row, writes, Get, OrderKey, Plan, Put, Report, KEYS};
use zddm_suite::servers::PostgresServer;

/// Both proxies over one store kind, seeded so that every key is a NEW hit.
struct Pair<'a> {
    name: &'static str,
    unversioned_get: Get<'a>,
    unversioned_put: Put<'a>,
    cached_get: Get<'a>,
    cached_put: Put<'a>,
    versioned_get: Get<'a>,
    versioned_put: Put<'a>,
}

fn measure(pair: &Pair<'_>, keys: &[OrderKey], plan: Plan, read_batch: usize, write_batch: usize) -> Vec<Report> {
    let name = |what: &str| format!("{} {what}", pair.name);
    vec![
        compare(
            name("put: versioned / unversioned fleet mode (CachedProxy)"),
            plan,
            write_batch,
            writes(keys, 0, &pair.cached_put),
            writes(keys, 1, &pair.versioned_put),
        ),
        compare(
            name("get, NEW hit: versioned / unversioned fleet mode"),
            plan,
            read_batch,
            reads(keys, &pair.cached_get),
            reads(keys, &pair.versioned_get),
        ),
        compare(
            name("put: versioned / single-process Proxy"),
            plan,
            write_batch,
            writes(keys, 0, &pair.unversioned_put),
            writes(keys, 1, &pair.versioned_put),
        ),
        compare(
            name("get, NEW hit: versioned / single-process Proxy"),
            plan,
            read_batch,
            reads(keys, &pair.unversioned_get),
            reads(keys, &pair.versioned_get),
        ),
    ]
}

/// Seeds every mode through the proxies themselves at 100 % (so NEW holds every key; the cache
/// after a read of each); not in a smoke run.
fn seed(plan: Plan, keys: &[OrderKey], pair: &Pair<'_>) {
    if plan.scale > 1 {
        return;
    }
    for key in keys {
        (pair.unversioned_put)(key, &row(key, 0));
        (pair.versioned_put)(key, &row(key, 0));
        (pair.cached_put)(key, &row(key, 0));
        (pair.cached_get)(key);
    }
}

fn sqlite(plan: Plan) -> Vec<Report> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = |name: &str| dir.path().join(name);
    let plain = |name: &str| SqliteStore::<OrderKey, String>::open(path(name), "orders").expect("opens");
    let unversioned = Proxy::new(plain("old.db"), plain("new.db"), Gate::new("orders", Rate::ALL));
    let old = SqliteSource::<OrderKey, String>::open(path("vold.db"), "orders").expect("opens");
    let new = SqliteTarget::<OrderKey, String>::open(path("vnew.db"), "orders").expect("opens");
    let versioned = VersionedProxy::new(old, new, Gate::new("orders", Rate::ALL));
    let cache = SqliteCache::<OrderKey, String>::open(path("cache.db"), "orders").expect("opens");
    let cached = CachedProxy::new(plain("cold.db"), cache, Gate::new("orders", Rate::ALL));
    let pair = Pair {
        name: "sqlite",
        unversioned_get: Box::new(|k| block_on(unversioned.get(k)).unwrap()),
        unversioned_put: Box::new(|k, v| block_on(unversioned.put(k, v)).unwrap()),
        cached_get: Box::new(|k| block_on(cached.get(k)).unwrap()),
        cached_put: Box::new(|k, v| block_on(cached.put(k, v)).unwrap()),
        versioned_get: Box::new(|k| block_on(versioned.get(k)).unwrap()),
        versioned_put: Box::new(|k, v| block_on(versioned.put(k, v)).unwrap()),
    };
    let keys = keys();
    seed(plan, &keys, &pair);
    measure(&pair, &keys, plan, 4_000, 200)
}

fn postgres(plan: Plan) -> Vec<Report> {
    let server = PostgresServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a Tokio runtime");
    let url = server.url();
    let plain = |table: &str| runtime.block_on(PostgresStore::<OrderKey, String>::connect(&url, table, 1)).unwrap();
    let unversioned = Proxy::new(plain("old_orders"), plain("new_orders"), Gate::new("orders", Rate::ALL));
    let old = runtime.block_on(PostgresSource::<OrderKey, String>::connect(&url, "vold_orders", 1)).unwrap();
    let new = runtime.block_on(PostgresTarget::<OrderKey, String>::connect(&url, "vnew_orders", 1)).unwrap();
    let versioned = VersionedProxy::new(old, new, Gate::new("orders", Rate::ALL));
    let cache = runtime.block_on(PostgresCache::<OrderKey, String>::connect(&url, "cache_orders", 1)).unwrap();
    let cached = CachedProxy::new(plain("cold_orders"), cache, Gate::new("orders", Rate::ALL));
    let on = &runtime;
    let pair = Pair {
        name: "postgres",
        unversioned_get: Box::new(|k| on.block_on(unversioned.get(k)).unwrap()),
        unversioned_put: Box::new(|k, v| on.block_on(unversioned.put(k, v)).unwrap()),
        cached_get: Box::new(|k| on.block_on(cached.get(k)).unwrap()),
        cached_put: Box::new(|k, v| on.block_on(cached.put(k, v)).unwrap()),
        versioned_get: Box::new(|k| on.block_on(versioned.get(k)).unwrap()),
        versioned_put: Box::new(|k, v| on.block_on(versioned.put(k, v)).unwrap()),
    };
    let keys = keys();
    seed(plan, &keys, &pair);
    measure(&pair, &keys, plan, 400, 200)
}

/// The request path in a fleet against on its own gate: the same memory stores, the same 100 %.
fn fleet(plan: Plan) -> Vec<Report> {
    let old = MemorySource::<OrderKey, String>::new();
    let new = MemoryTarget::<OrderKey, String>::new();
    let local = VersionedProxy::new(&old, &new, Gate::new("orders", Rate::ALL));
    let member = block_on(Fleet::join(MemoryControl::new(), "bench", "orders", FleetConfig::default())).unwrap();
    block_on(member.set_goal(Goal { phase: Phase::ReadThrough, rate: Rate::ALL })).unwrap();
    while block_on(member.poll()).unwrap().moving {}
    let in_fleet = VersionedProxy::in_fleet(&old, &new, &member);
    let keys = keys();
    for key in keys.iter().take(if plan.scale > 1 { 0 } else { KEYS }) {
        let version = block_on(old.put(key, &row(key, 0))).unwrap();
        block_on(new.fill(key, Some(&row(key, 0)), version, None)).unwrap();
    }
    let local_get: Get<'_> = Box::new(|k| block_on(local.get(k)).unwrap());
    let fleet_get: Get<'_> = Box::new(|k| block_on(in_fleet.get(k)).unwrap());
    vec![compare(
        "memory get, NEW hit: fleet plan vs own gate".into(),
        plan,
        20_000,
        reads(&keys, &local_get),
        reads(&keys, &fleet_get),
    )]
}

fn main() {
    let (plan, full) = Plan::from_args();
    let mut reports = sqlite(plan);
    reports.extend(postgres(plan));
    let fleet = fleet(plan);
    if !full {
        println!(
            "versioned: smoke run done ({} comparisons); `cargo bench --bench versioned` measures",
            reports.len() + 1
        );
        return;
    }
    print(&reports, plan.rounds, "baseline", "versioned");
    println!();
    print(&fleet, plan.rounds, "own gate", "fleet");
}
