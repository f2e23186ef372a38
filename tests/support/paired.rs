//! Paired measurement for the benches: each comparison times a batch of operations one way and
//! the same batch the other way, back to back, over many rounds (the order flips every round), and
//! reports the median of the per-round ratios. Drift in the machine's speed hits both halves of a
//! round alike and cancels, which separate benchmark runs cannot do on a noisy 2-core machine.

use std::time::{Duration, Instant};

/// How much to measure: the full run under `cargo bench`, a smoke run under `cargo test`.
#[derive(Clone, Copy)]
pub struct Plan {
    pub rounds: usize,
    pub warm_up: usize,
    pub scale: usize,
}

/// The number of keys the benches walk.
pub const KEYS: usize = 10_000;

/// Walks the keys with a stride, so that consecutive operations touch unrelated rows.
pub struct Walk(pub usize);

impl Walk {
    pub fn step(&mut self) -> usize {
        self.0 = (self.0 + 7_919) % KEYS;
        self.0
    }
}

/// One comparison's figures: median time per operation each way, and the per-round ratios.
pub struct Report {
    pub name: String,
    pub direct: Vec<f64>,
    pub proxy: Vec<f64>,
    pub ratios: Vec<f64>,
}

pub fn median(values: &[f64]) -> f64 {
    quantile(values, 0.5)
}

pub fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// Times `batch` operations of `direct` and of `proxy` per round; each call of either runs one
/// batch from its own walk position and returns the batch's duration.
pub fn compare(
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

pub fn timed(body: impl FnOnce()) -> Duration {
    let start = Instant::now();
    body();
    start.elapsed()
}

impl Plan {
    /// The full run under `cargo bench` (`--bench` in the arguments), a smoke run otherwise.
    pub fn from_args() -> (Plan, bool) {
        let full = std::env::args().any(|arg| arg == "--bench");
        let plan =
            if full { Plan { rounds: 41, warm_up: 3, scale: 1 } } else { Plan { rounds: 2, warm_up: 0, scale: 100 } };
        (plan, full)
    }
}

/// Prints the reports as a Markdown table, `left` and `right` naming the two sides.
pub fn print(reports: &[Report], rounds: usize, left: &str, right: &str) {
    println!(
        "{rounds} rounds per comparison; per operation, medians over rounds; ratio = {right} / {left} per round\n"
    );
    println!("| comparison | {left} | {right} | median ratio | ratios p25–p75 |");
    println!("|---|---|---|---|---|");
    for r in reports {
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

/// The benches' key: a tenant and an order number, like a real compound key.
#[derive(zddm::MigrationKey, Clone)]
pub struct OrderKey {
    pub tenant: u32,
    pub order: String,
}

/// Every key the benches use.
pub fn keys() -> Vec<OrderKey> {
    (0..KEYS as u32).map(|i| OrderKey { tenant: i % 50, order: format!("A-{i:08}") }).collect()
}

/// A value for `key`, different for every `version`.
pub fn row(key: &OrderKey, version: usize) -> String {
    format!("a row of data for {} (version {version})", key.order)
}

/// One read, done one way or the other, returning once it is done.
pub type Get<'a> = Box<dyn Fn(&OrderKey) -> Option<String> + 'a>;
/// One write, likewise.
pub type Put<'a> = Box<dyn Fn(&OrderKey, &String) + 'a>;

/// A batch of reads along the walk.
pub fn reads<'a>(keys: &'a [OrderKey], get: &'a Get<'a>) -> impl FnMut(&mut Walk, usize) -> Duration + 'a {
    move |walk, batch| {
        timed(|| {
            for _ in 0..batch {
                std::hint::black_box(get(std::hint::black_box(&keys[walk.step()])));
            }
        })
    }
}

/// A batch of writes; every write changes its row (`first`, then every other version), so neither
/// side of a comparison rewrites what the other just wrote.
pub fn writes<'a>(
    keys: &'a [OrderKey],
    first: usize,
    put: impl Fn(&OrderKey, &String) + 'a,
) -> impl FnMut(&mut Walk, usize) -> Duration + 'a {
    let mut version = first;
    move |walk, batch| {
        version += 2;
        let batch: Vec<(&OrderKey, String)> =
            (0..batch).map(|_| &keys[walk.step()]).map(|k| (k, row(k, version))).collect();
        timed(|| batch.iter().for_each(|(key, value)| put(key, value)))
    }
}
