use zddm_suite::ui::{Order, OrderKey, RepoError};

pub struct OldStore;
pub struct NewStore;

#[zddm::migrate(old = OldStore, new = NewStore)]
pub trait Orders {
    fn get(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    fn put(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    fn delete(&self, key: &OrderKey) -> Result<(), RepoError>;
    // Named like reads, but each also writes: routed as a read, NEW would miss the write.
    fn get_or_create_order(&self, key: &OrderKey) -> Result<Order, RepoError>;
    fn fetch_and_increment(&self, key: &OrderKey) -> Result<u64, RepoError>;
    fn load_then_delete(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
}

fn main() {}
