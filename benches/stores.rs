//! The proxy's overhead over direct access to the same real store (issue 5's goal: at most 1.05×),
//! on SQLite and PostgreSQL, with the gate at 0 % and at 100 %, for reads and writes.
//!
//! Each comparison times a batch of operations done directly and the same batch through the proxy,
//! back to back, over many rounds (the order flips every round), and reports the median of the
//! per-round ratios: drift in the machine's speed hits both halves of a round alike and cancels,
//! which separate benchmark runs cannot do on a noisy 2-core machine.
//!
//! `cargo bench --bench stores` (PostgreSQL runs on a server the bench starts, as the tests do).
//! Under `cargo test` it runs two tiny rounds of each, as a check that it works.

use std::hint::black_box;
use std::time::{Duration, Instant};

use zddm::{Blocking, BlockingStore, Gate, MigrationKey, PostgresStore, Proxy, Rate, SqliteStore, Store};
use zddm_suite::servers::PostgresServer;

#[derive(MigrationKey, Clone)]
struct OrderKey {
    tenant: u32,
    order: String,
}

const KEYS: usize = 10_000;

/// How much to measure: the full run under `cargo bench`, a smoke run under `cargo test`.
#[derive(Clone, Copy)]
struct Plan {
    rounds: usize,
    warm_up: usize,
    scale: usize,
}

fn keys() -> Vec<OrderKey> {
    (0..KEYS as u32).map(|i| OrderKey { tenant: i % 50, order: format!("A-{i:08}") }).collect()
}

fn row(key: &OrderKey, version: usize) -> String {
    format!("a row of data for {} (version {version})", key.order)
}

/// Walks the keys with a stride, so that consecutive operations touch unrelated rows.
struct Walk(usize);

impl Walk {
    fn next(&mut self) -> usize {
        self.0 = (self.0 + 7_919) % KEYS;
        self.0
    }
}

/// One comparison's figures: median time per operation each way, and the per-round ratios.
struct Report {
    name: String,
    direct: Vec<f64>,
    proxy: Vec<f64>,
    ratios: Vec<f64>,
}

fn median(values: &[f64]) -> f64 {
    quantile(values, 0.5)
}

fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Times `batch` operations of `direct` and of `proxy` per round; each call of either runs one
/// batch from its own walk position and returns the batch's duration.
fn compare(
    name: String,
    plan: Plan,
    batch: usize,
    mut direct: impl FnMut(&mut Walk, usize) -> Duration,
    mut proxy: impl FnMut(&mut Walk, usize) -> Duration,
) -> Report {
    let batch = (batch / plan.scale).max(2);
    let (mut walk_direct, mut walk_proxy) = (Walk(0), Walk(0));
    let mut report = Report { name, direct: Vec::new(), proxy: Vec::new(), ratios: Vec::new() };
    for round in 0..plan.warm_up + plan.rounds {
        let (d, p) = if round % 2 == 0 {
            let d = direct(&mut walk_direct, batch);
            (d, proxy(&mut walk_proxy, batch))
        } else {
            let p = proxy(&mut walk_proxy, batch);
            (direct(&mut walk_direct, batch), p)
        };
        if round >= plan.warm_up {
            let per_op = |t: Duration| t.as_nanos() as f64 / batch as f64;
            report.direct.push(per_op(d));
            report.proxy.push(per_op(p));
            report.ratios.push(p.as_secs_f64() / d.as_secs_f64());
        }
    }
    report
}

fn timed(body: impl FnOnce()) -> Duration {
    let start = Instant::now();
    body();
    start.elapsed()
}

type Get<'a> = Box<dyn Fn(&OrderKey) -> Option<String> + 'a>;
type Put<'a> = Box<dyn Fn(&OrderKey, &String) + 'a>;

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

fn reads<'a>(keys: &'a [OrderKey], get: &'a Get<'a>) -> impl FnMut(&mut Walk, usize) -> Duration + 'a {
    move |walk, batch| {
        timed(|| {
            for _ in 0..batch {
                black_box(get(black_box(&keys[walk.next()])).expect("every key is seeded"));
            }
        })
    }
}

/// A batch of writes; every write changes its row (`first`, then every other version), so neither
/// side of a comparison rewrites what the other just wrote.
fn writes<'a>(
    keys: &'a [OrderKey],
    first: usize,
    put: impl Fn(&OrderKey, &String) + 'a,
) -> impl FnMut(&mut Walk, usize) -> Duration + 'a {
    let mut version = first;
    move |walk, batch| {
        version += 2;
        let batch: Vec<(&OrderKey, String)> =
            (0..batch).map(|_| &keys[walk.next()]).map(|k| (k, row(k, version))).collect();
        timed(|| batch.iter().for_each(|(key, value)| put(key, value)))
    }
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
    lapsed.set_rate(Rate::NONE);
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
    old.put_many(&refs).expect("seeds OLD");
    new.put_many(&refs).expect("seeds NEW");
    let [closed, lapsed, open_gate] = gates().map(|gate| Proxy::new(Blocking(&old), Blocking(&new), gate));
    let [closed, lapsed, open_gate] = [closed.blocking(), lapsed.blocking(), open_gate.blocking()];
    let ops = Ops {
        name: "sqlite",
        old_get: Box::new(|k| old.get(k).unwrap()),
        new_get: Box::new(|k| new.get(k).unwrap()),
        old_put: Box::new(|k, v| old.put(k, v).unwrap()),
        new_put: Box::new(|k, v| new.put(k, v).unwrap()),
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
    let full = std::env::args().any(|arg| arg == "--bench");
    let plan =
        if full { Plan { rounds: 41, warm_up: 3, scale: 1 } } else { Plan { rounds: 2, warm_up: 0, scale: 100 } };
    let mut reports = sqlite(plan);
    reports.extend(postgres(plan));
    if !full {
        println!("stores: smoke run done ({} comparisons); `cargo bench --bench stores` measures", reports.len());
        return;
    }
    println!(
        "{} rounds per comparison; per operation, medians over rounds; ratio = proxy / direct per round\n",
        plan.rounds
    );
    println!("| comparison | direct | proxy | median ratio | ratios p25–p75 |");
    println!("|---|---|---|---|---|");
    for r in &reports {
        println!(
            "| {} | {:.0} ns | {:.0} ns | **{:.3}×** | {:.3}–{:.3} |",
            r.name,
            median(&r.direct),
            median(&r.proxy),
            median(&r.ratios),
            quantile(&r.ratios, 0.25),
            quantile(&r.ratios, 0.75)
        );
    }
}
