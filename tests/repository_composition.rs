//! `#[zddm::migrate]` composes with `#[async_trait]` (above it) and with `#[tracing::instrument]` on
//! the stores' methods and on default methods.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use zddm::{Gate, MemoryStore, Rate, Store};
use zddm_suite::ui::{Order, OrderKey, RepoError};

#[zddm::migrate(old = OldOrders, new = NewOrders)]
#[async_trait]
pub trait Orders {
    async fn get(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    async fn put(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    async fn delete(&self, key: &OrderKey) -> Result<(), RepoError>;
    #[zddm(old)]
    async fn label(&self) -> String;
    #[tracing::instrument(skip(self))]
    async fn items(&self, key: &OrderKey) -> Result<u32, RepoError> {
        Ok(self.get(key).await?.map_or(0, |order| order.items))
    }
}

pub struct OldOrders(MemoryStore<OrderKey, Order>);
pub struct NewOrders(MemoryStore<OrderKey, Order>);

macro_rules! memory_backend {
    ($store:ident, $label:literal) => {
        #[zddm::backend]
        #[async_trait]
        impl Orders for $store {
            #[tracing::instrument(skip(self), fields(store = $label))]
            async fn get(&self, key: &OrderKey) -> Result<Option<Order>, RepoError> {
                self.0.get(key).await.map_err(|_| RepoError)
            }
            #[tracing::instrument(skip(self, order), fields(store = $label))]
            async fn put(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError> {
                self.0.put(key, order).await.map_err(|_| RepoError)
            }
            #[tracing::instrument(skip(self), fields(store = $label))]
            async fn delete(&self, key: &OrderKey) -> Result<(), RepoError> {
                self.0.delete(key).await.map_err(|_| RepoError)
            }
            async fn label(&self) -> String {
                $label.to_owned()
            }
        }
    };
}

memory_backend!(OldOrders, "old");
memory_backend!(NewOrders, "new");

/// Counts the spans created, to see that the instrumented methods ran.
#[derive(Default)]
struct CountSpans(Arc<AtomicUsize>);

impl tracing::Subscriber for CountSpans {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(self.0.fetch_add(1, Ordering::SeqCst) as u64 + 1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, _: &tracing::Event<'_>) {}
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test(flavor = "current_thread")]
async fn async_trait_and_instrument_compose_with_the_migration() {
    let spans = Arc::new(AtomicUsize::new(0));
    let _guard = tracing::subscriber::set_default(CountSpans(spans.clone()));

    let orders =
        OrdersMigration::new(OldOrders(MemoryStore::new()), NewOrders(MemoryStore::new()), Gate::new("c", Rate::ALL));
    let key = OrderKey { tenant: 1, order: "A-1".into() };
    orders.put(&key, &Order { items: 4 }).await.unwrap();
    assert_eq!(orders.items(&key).await.unwrap(), 4, "a default method, instrumented, through the migration");
    assert_eq!(orders.label().await, "old");
    orders.delete(&key).await.unwrap();
    assert_eq!(orders.get(&key).await.unwrap(), None);
    // put: OLD + NEW; items: the default method, then NEW's get; delete: OLD + NEW; get: NEW, OLD.
    assert!(spans.load(Ordering::SeqCst) >= 8, "{} spans", spans.load(Ordering::SeqCst));

    // The futures are `Send`, as `#[async_trait]` promises.
    fn assert_send<T: Send>(_: T) {}
    assert_send(orders.get(&key));
}
