use zddm_suite::ui::{NewStore, OldStore, Order, OrderKey, RepoError};

// In versioned mode OLD must give versions: `OldStore` has no `#[zddm::backend] impl Source`.
#[zddm::migrate(old = OldStore, new = NewStore, mode = versioned)]
pub trait Orders {
    fn get(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    fn put(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    fn delete(&self, key: &OrderKey) -> Result<(), RepoError>;
}

zddm_suite::null_backend!(Orders for OldStore, key = OrderKey, error = RepoError);
zddm_suite::null_backend!(Orders for NewStore, key = OrderKey, error = RepoError);

fn main() {}
