//! The proxy over real stores against direct access to the same store: a gate-closed read against
//! OLD's get, a NEW hit against NEW's get (issue 5's goal: within 5 %). SQLite here; PostgreSQL joins
//! with its adapter.
//!
//! `cargo bench --bench stores`, then `python3 scripts/bench-ratios.py stores`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use zddm::{Blocking, BlockingStore, Gate, MigrationKey, Proxy, Rate, SqliteStore};

#[derive(MigrationKey, Clone)]
struct OrderKey {
    tenant: u32,
    order: String,
}

fn sqlite(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let open = |name: &str| SqliteStore::<OrderKey, String>::open(dir.path().join(name), "orders").unwrap();
    let (old, new) = (open("old.db"), open("new.db"));
    let keys: Vec<OrderKey> = (0..10_000u32).map(|i| OrderKey { tenant: i % 50, order: format!("A-{i:08}") }).collect();
    let rows: Vec<(OrderKey, String)> =
        keys.iter().map(|k| (k.clone(), format!("a row of data for {}", k.order))).collect();
    let refs: Vec<(&OrderKey, &String)> = rows.iter().map(|(k, v)| (k, v)).collect();
    old.put_many(&refs).unwrap();
    new.put_many(&refs).unwrap();
    let closed = Proxy::new(Blocking(&old), Blocking(&new), Gate::new("orders", Rate::NONE));
    let open_gate = Proxy::new(Blocking(&old), Blocking(&new), Gate::new("orders", Rate::ALL));
    let (closed, open_gate) = (closed.blocking(), open_gate.blocking());

    let mut group = c.benchmark_group("stores");
    let mut i = 0usize;
    let mut next = || {
        i = (i + 7_919) % keys.len();
        &keys[i]
    };
    group.bench_function("sqlite_direct_old_get", |b| b.iter(|| old.get(black_box(next())).unwrap()));
    group.bench_function("sqlite_proxy_get_gate_0", |b| b.iter(|| closed.get(black_box(next())).unwrap()));
    group.bench_function("sqlite_direct_new_get", |b| b.iter(|| new.get(black_box(next())).unwrap()));
    group.bench_function("sqlite_proxy_get_gate_100", |b| b.iter(|| open_gate.get(black_box(next())).unwrap()));
    group.finish();
}

criterion_group!(benches, sqlite);
criterion_main!(benches);
