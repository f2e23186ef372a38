use zddm_suite::ui::{NewStore, OldStore, Order, RepoError};

pub struct Sku(f64);

#[zddm::migrate(old = OldStore, new = NewStore)]
pub trait Orders {
    fn get(&self, key: &Sku) -> Result<Option<Order>, RepoError>;
    fn put(&self, key: &Sku, order: &Order) -> Result<(), RepoError>;
    fn delete(&self, key: &Sku) -> Result<(), RepoError>;
}

#[zddm::backend]
impl Orders for OldStore {
    fn get(&self, _: &Sku) -> Result<Option<Order>, RepoError> {
        Ok(None)
    }
    fn put(&self, _: &Sku, _: &Order) -> Result<(), RepoError> {
        Ok(())
    }
    fn delete(&self, _: &Sku) -> Result<(), RepoError> {
        Ok(())
    }
}

#[zddm::backend]
impl Orders for NewStore {
    fn get(&self, _: &Sku) -> Result<Option<Order>, RepoError> {
        Ok(None)
    }
    fn put(&self, _: &Sku, _: &Order) -> Result<(), RepoError> {
        Ok(())
    }
    fn delete(&self, _: &Sku) -> Result<(), RepoError> {
        Ok(())
    }
}

fn main() {}
