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

#[zddm::backend]
impl Orders for OldStore {
    fn get(&self, _: &OrderKey) -> Result<Option<Order>, StoreError> {
        Ok(None)
    }
    fn put(&self, _: &OrderKey, _: &Order) -> Result<(), StoreError> {
        Ok(())
    }
    fn delete(&self, _: &OrderKey) -> Result<(), StoreError> {
        Ok(())
    }
}

#[zddm::backend]
impl Orders for NewStore {
    fn get(&self, _: &OrderKey) -> Result<Option<Order>, StoreError> {
        Ok(None)
    }
    fn put(&self, _: &OrderKey, _: &Order) -> Result<(), StoreError> {
        Ok(())
    }
    fn delete(&self, _: &OrderKey) -> Result<(), StoreError> {
        Ok(())
    }
}

fn main() {}
