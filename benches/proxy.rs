//! The proxy's own overhead on `MemoryStore`, side by side with what it cannot avoid: a gate-closed
//! read against (OLD get + gate decision), a NEW-hit read against (NEW get + gate decision).
//!
//! `cargo bench --bench proxy`, then `python3 scripts/bench-ratios.py proxy`.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{criterion_group, criterion_main, Criterion};
use zddm::{Gate, MemoryStore, MigrationKey, Proxy, Rate, Store};

#[derive(MigrationKey, Clone)]
struct OrderKey {
    tenant: u32,
    order: String,
}

/// The in-memory store answers on the first poll; both sides of each comparison are driven the
/// same way, so the harness cost cancels out.
fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("MemoryStore futures are ready at once"),
    }
}

fn proxy(c: &mut Criterion) {
    let key = OrderKey { tenant: 4_242, order: "A-10004217".into() };
    let value = "a typical row of some forty bytes of data".to_string();
    let old = MemoryStore::<OrderKey, String>::new();
    let new = MemoryStore::<OrderKey, String>::new();
    ready(old.put(&key, &value)).unwrap();
    ready(new.put(&key, &value)).unwrap();
    let gate = Gate::new("orders-to-postgres", Rate::NONE);
    let proxy = Proxy::new(&old, &new, gate.clone());
    let open = Gate::new("orders-to-postgres", Rate::ALL);
    let proxy_open = Proxy::new(&old, &new, open.clone());

    let mut group = c.benchmark_group("proxy");
    group.bench_function("closed_baseline_old_get_and_gate", |b| {
        b.iter(|| {
            black_box(gate.admits(black_box(&key)));
            ready(old.get(black_box(&key))).unwrap()
        })
    });
    group.bench_function("closed_proxy_get", |b| b.iter(|| ready(proxy.get(black_box(&key))).unwrap()));
    group.bench_function("hit_baseline_new_get_and_gate", |b| {
        b.iter(|| {
            black_box(open.admits(black_box(&key)));
            ready(new.get(black_box(&key))).unwrap()
        })
    });
    group.bench_function("hit_proxy_get", |b| b.iter(|| ready(proxy_open.get(black_box(&key))).unwrap()));
    group.bench_function("write_baseline_old_and_new_put", |b| {
        b.iter(|| {
            ready(old.put(black_box(&key), &value)).unwrap();
            ready(new.put(black_box(&key), &value)).unwrap()
        })
    });
    group.bench_function("write_proxy_put", |b| b.iter(|| ready(proxy_open.put(black_box(&key), &value)).unwrap()));
    group.finish();
}

criterion_group!(benches, proxy);
criterion_main!(benches);
