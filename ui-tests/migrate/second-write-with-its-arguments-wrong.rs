use zddm_suite::ui::{Order, OrderKey, RepoError};

pub struct OldStore;
pub struct NewStore;
pub struct Status;

#[zddm::migrate(old = OldStore, new = NewStore)]
pub trait Orders {
    fn get_order(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    fn put_order(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    fn delete_order(&self, key: &OrderKey) -> Result<(), RepoError>;
    // The status by value: the call is prepared for both stores, so it must be shared.
    #[zddm(write)]
    fn set_status(&self, key: &OrderKey, status: Status) -> Result<(), RepoError>;
    // Another key type: not this table's write.
    #[zddm(write)]
    fn archive(&self, key: &u64) -> Result<(), RepoError>;
    // No `Result`: a failure could not be reported.
    #[zddm(delete)]
    fn purge(&self, key: &OrderKey) -> bool;
}

fn main() {}
