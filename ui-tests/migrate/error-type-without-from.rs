use zddm_suite::ui::{NewStore, OldStore, Order, OrderKey};

#[derive(Debug)]
pub struct StoreError;
impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("store error")
    }
}
impl std::error::Error for StoreError {}

#[zddm::migrate(old = OldStore, new = NewStore)]
pub trait Orders {
    fn get(&self, key: &OrderKey) -> Result<Option<Order>, StoreError>;
    fn put(&self, key: &OrderKey, order: &Order) -> Result<(), StoreError>;
    fn delete(&self, key: &OrderKey) -> Result<(), StoreError>;
}

zddm_suite::null_backend!(Orders for OldStore, key = OrderKey, error = StoreError);
zddm_suite::null_backend!(Orders for NewStore, key = OrderKey, error = StoreError);

fn main() {}
