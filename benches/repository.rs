//! A call through a `#[zddm::migrate]` repository against the same call on its proxy directly: the
//! macro's own cost (the trait method, the error conversion), with the same stores behind both.
//!
//! `cargo bench --bench repository`, then `python3 scripts/bench-ratios.py repository`.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use criterion::{criterion_group, criterion_main, Criterion};
use zddm::{Gate, MemoryStore, Rate, Store};
use zddm_suite::ui::{Order, OrderKey, RepoError};

#[zddm::migrate(old = OldOrders, new = NewOrders)]
#[allow(async_fn_in_trait)]
pub trait Orders {
    async fn get(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    async fn put(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    async fn delete(&self, key: &OrderKey) -> Result<(), RepoError>;
}

pub struct OldOrders(MemoryStore<OrderKey, Order>);
pub struct NewOrders(MemoryStore<OrderKey, Order>);

macro_rules! memory_backend {
    ($store:ident) => {
        #[zddm::backend]
        impl Orders for $store {
            async fn get(&self, key: &OrderKey) -> Result<Option<Order>, RepoError> {
                self.0.get(key).await.map_err(|_| RepoError)
            }
            async fn put(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError> {
                self.0.put(key, order).await.map_err(|_| RepoError)
            }
            async fn delete(&self, key: &OrderKey) -> Result<(), RepoError> {
                self.0.delete(key).await.map_err(|_| RepoError)
            }
        }
    };
}

memory_backend!(OldOrders);
memory_backend!(NewOrders);

fn ready<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(output) => output,
        Poll::Pending => unreachable!("MemoryStore futures are ready at once"),
    }
}

fn repository(c: &mut Criterion) {
    let key = OrderKey { tenant: 4_242, order: "A-10004217".into() };
    let order = Order { items: 3 };
    let mut group = c.benchmark_group("repository");
    for (name, rate) in [("closed", Rate::NONE), ("hit", Rate::ALL)] {
        let orders = OrdersMigration::new(
            OldOrders(MemoryStore::new()),
            NewOrders(MemoryStore::new()),
            Gate::new("orders", rate),
        );
        ready(orders.put(&key, &order)).unwrap();
        ready(orders.get(&key)).unwrap();
        group.bench_function(format!("{name}_proxy_get"), |b| b.iter(|| ready(orders.proxy().get(black_box(&key)))));
        group.bench_function(format!("{name}_generated_get"), |b| b.iter(|| ready(orders.get(black_box(&key)))));
    }
    group.finish();
}

criterion_group!(benches, repository);
criterion_main!(benches);
