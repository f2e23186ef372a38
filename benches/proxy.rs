//! The proxy's own overhead on `MemoryStore`, side by side with what it cannot avoid: a gate-closed
//! read against (OLD get + gate decision), a NEW-hit read against (NEW get + gate decision).
//!
//! `cargo bench --bench proxy`, then `python3 scripts/bench-ratios.py proxy`.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{criterion_group, criterion_main, Criterion};
use zddm::{Admission, Gate, MemoryStore, MigrationKey, Proxy, Rate, Store};

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
    // A 50 % gate, so that every decision hashes its key as mid-ramp (at 0 % before any ramp, and
    // at 100 %, the gate needs no hash). `key` is not admitted, `hit` is.
    let gate = Gate::new("orders-to-postgres", Rate::percent(50.0).unwrap());
    let find = |admission| {
        (4_242u32..)
            .map(|tenant| OrderKey { tenant, order: "A-10004217".into() })
            .find(|k| gate.admission(k) == admission)
    };
    let (key, hit) = (find(Admission::Never).unwrap(), find(Admission::Admitted).unwrap());
    let value = "a typical row of some forty bytes of data".to_string();
    let old = MemoryStore::<OrderKey, String>::new();
    let new = MemoryStore::<OrderKey, String>::new();
    for k in [&key, &hit] {
        ready(old.put(k, &value)).unwrap();
        ready(new.put(k, &value)).unwrap();
    }
    let proxy = Proxy::new(&old, &new, gate.clone());
    let (open, proxy_open) = (&gate, &proxy);

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
            black_box(open.admits(black_box(&hit)));
            ready(new.get(black_box(&hit))).unwrap()
        })
    });
    group.bench_function("hit_proxy_get", |b| b.iter(|| ready(proxy_open.get(black_box(&hit))).unwrap()));
    group.bench_function("write_baseline_old_and_new_put", |b| {
        b.iter(|| {
            ready(old.put(black_box(&hit), &value)).unwrap();
            ready(new.put(black_box(&hit), &value)).unwrap()
        })
    });
    group.bench_function("write_proxy_put", |b| b.iter(|| ready(proxy_open.put(black_box(&hit), &value)).unwrap()));
    group.finish();
}

criterion_group!(benches, proxy);
criterion_main!(benches);
