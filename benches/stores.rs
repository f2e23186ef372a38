//! The proxy's overhead over direct access to the same real store (issue 5's goal: at most 1.05×),
//! on SQLite and PostgreSQL, with the gate at 0 % and at 100 %, for reads and writes.
//!
//! Each comparison times a batch of operations done directly and the same batch through the proxy,
//! back to back, over many rounds, and reports the median of the per-round ratios
//! (`zddm_suite::paired`).
//!
//! `cargo bench --bench stores` (PostgreSQL runs on a server the bench starts, as the tests do).
//! Under `cargo test` it runs two tiny rounds of each, as a check that it works.

use zddm::{block_on, Gate, PostgresStore, Proxy, Rate, SqliteStore, Store};
use zddm_suite::paired::{compare, keys, print, reads, row, writes, Get, OrderKey, Plan, Put, Report};
use zddm_suite::servers::PostgresServer;

/// One store kind's operations, directly and through proxies whose gates stand at 0 % (never
/// ramped), 0 % after a ramp to 100 % and back (every key lapsed: the gate hashes each key), and
/// 100 %. Each call does one operation and returns once it is done.
struct Ops<'a> {
    name: &'static str,
    old_get: Get<'a>,
    new_get: Get<'a>,
    old_put: Put<'a>,
    new_put: Put<'a>,
    closed_get: Get<'a>,
    lapsed_get: Get<'a>,
    open_get: Get<'a>,
    closed_put: Put<'a>,
    open_put: Put<'a>,
}

fn measure(ops: &Ops<'_>, keys: &[OrderKey], plan: Plan, read_batch: usize, write_batch: usize) -> Vec<Report> {
    let name = |what: &str| format!("{} {what}", ops.name);
    vec![
        compare(name("get, gate 0 % (OLD)"), plan, read_batch, reads(keys, &ops.old_get), reads(keys, &ops.closed_get)),
        compare(
            name("get, gate 0 % after a ramp-down (OLD, key hashed)"),
            plan,
            read_batch,
            reads(keys, &ops.old_get),
            reads(keys, &ops.lapsed_get),
        ),
        compare(
            name("get, gate 100 % (NEW hit)"),
            plan,
            read_batch,
            reads(keys, &ops.new_get),
            reads(keys, &ops.open_get),
        ),
        compare(
            name("put, gate 0 % (OLD)"),
            plan,
            write_batch,
            writes(keys, 0, &ops.old_put),
            writes(keys, 1, &ops.closed_put),
        ),
        compare(
            name("put, gate 100 % (OLD + NEW)"),
            plan,
            write_batch,
            writes(keys, 0, |key, value| {
                (ops.old_put)(key, value);
                (ops.new_put)(key, value);
            }),
            writes(keys, 1, &ops.open_put),
        ),
    ]
}

/// The three gates of [`Ops`].
fn gates() -> [Gate; 3] {
    let lapsed = Gate::new("orders", Rate::ALL);
    lapsed.set_rate(Rate::NONE).unwrap();
    [Gate::new("orders", Rate::NONE), lapsed, Gate::new("orders", Rate::ALL)]
}

fn seed_rows(keys: &[OrderKey]) -> Vec<(OrderKey, String)> {
    keys.iter().map(|k| (k.clone(), row(k, 0))).collect()
}

fn sqlite(plan: Plan) -> Vec<Report> {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let open = |name: &str| SqliteStore::<OrderKey, String>::open(dir.path().join(name), "orders").expect("opens");
    let (old, new) = (open("old.db"), open("new.db"));
    let keys = keys();
    let rows = seed_rows(&keys);
    let refs: Vec<(&OrderKey, &String)> = rows.iter().map(|(k, v)| (k, v)).collect();
    block_on(old.put_many(&refs)).expect("seeds OLD");
    block_on(new.put_many(&refs)).expect("seeds NEW");
    let [closed, lapsed, open_gate] = gates().map(|gate| Proxy::new(&old, &new, gate));
    let [closed, lapsed, open_gate] = [closed.blocking(), lapsed.blocking(), open_gate.blocking()];
    // Both sides wait for the store's own thread, as an application's synchronous code would.
    let ops = Ops {
        name: "sqlite",
        old_get: Box::new(|k| block_on(old.get(k)).unwrap()),
        new_get: Box::new(|k| block_on(new.get(k)).unwrap()),
        old_put: Box::new(|k, v| block_on(old.put(k, v)).unwrap()),
        new_put: Box::new(|k, v| block_on(new.put(k, v)).unwrap()),
        closed_get: Box::new(|k| closed.get(k).unwrap()),
        lapsed_get: Box::new(|k| lapsed.get(k).unwrap()),
        open_get: Box::new(|k| open_gate.get(k).unwrap()),
        closed_put: Box::new(|k, v| closed.put(k, v).unwrap()),
        open_put: Box::new(|k, v| open_gate.put(k, v).unwrap()),
    };
    measure(&ops, &keys, plan, 4_000, 100)
}

fn postgres(plan: Plan) -> Vec<Report> {
    let server = PostgresServer::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a Tokio runtime");
    let connect = |table: &str| {
        runtime.block_on(PostgresStore::<OrderKey, String>::connect(&server.url(), table, 1)).expect("connects")
    };
    let (old, new) = (connect("old_orders"), connect("new_orders"));
    let keys = keys();
    let rows = seed_rows(&keys);
    let refs: Vec<(&OrderKey, &String)> = rows.iter().map(|(k, v)| (k, v)).collect();
    runtime.block_on(old.put_many(&refs)).expect("seeds OLD");
    runtime.block_on(new.put_many(&refs)).expect("seeds NEW");
    let [closed, lapsed, open_gate] = gates().map(|gate| Proxy::new(&old, &new, gate));
    let on = &runtime;
    let ops = Ops {
        name: "postgres",
        old_get: Box::new(|k| on.block_on(old.get(k)).unwrap()),
        new_get: Box::new(|k| on.block_on(new.get(k)).unwrap()),
        old_put: Box::new(|k, v| on.block_on(old.put(k, v)).unwrap()),
        new_put: Box::new(|k, v| on.block_on(new.put(k, v)).unwrap()),
        closed_get: Box::new(|k| on.block_on(closed.get(k)).unwrap()),
        lapsed_get: Box::new(|k| on.block_on(lapsed.get(k)).unwrap()),
        open_get: Box::new(|k| on.block_on(open_gate.get(k)).unwrap()),
        closed_put: Box::new(|k, v| on.block_on(closed.put(k, v)).unwrap()),
        open_put: Box::new(|k, v| on.block_on(open_gate.put(k, v)).unwrap()),
    };
    measure(&ops, &keys, plan, 400, 200)
}

fn main() {
    let (plan, full) = Plan::from_args();
    let mut reports = sqlite(plan);
    reports.extend(postgres(plan));
    if !full {
        println!("stores: smoke run done ({} comparisons); `cargo bench --bench stores` measures", reports.len());
        return;
    }
    print(&reports, plan.rounds, "direct", "proxy");
}
