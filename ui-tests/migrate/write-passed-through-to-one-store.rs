use zddm_suite::ui::{Order, OrderKey, RepoError};

pub struct OldStore;
pub struct NewStore;

#[zddm::migrate(old = OldStore, new = NewStore)]
pub trait Orders {
    fn get_order(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    fn put_order(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    fn delete_order(&self, key: &OrderKey) -> Result<(), RepoError>;
    // Writes of the table's keys, each to one store.
    #[zddm(new)]
    fn put_many(&self, entries: &[(OrderKey, Order)]) -> Result<(), RepoError>;
    #[zddm(old)]
    fn delete_expired(&self, keys: &[OrderKey]) -> Result<usize, RepoError>;
    // Writes by other verbs, and a read that writes as well.
    #[zddm(old)]
    fn update_status(&self, key: &OrderKey, status: &str) -> Result<(), RepoError>;
    #[zddm(new)]
    fn archive_order(&self, key: &OrderKey) -> Result<bool, RepoError>;
    #[zddm(old)]
    fn get_or_create_order(&self, key: &OrderKey) -> Result<Order, RepoError>;
    // The key elsewhere than first, the verb elsewhere than first, camelCase, a borrowed key.
    #[zddm(old)]
    fn set_status_of(&self, status: &str, key: &OrderKey) -> Result<(), RepoError>;
    #[zddm(old)]
    fn bulk_update_orders(&self, keys: &[OrderKey]) -> Result<(), RepoError>;
    #[zddm(new)]
    fn soft_delete_order(&self, key: &OrderKey) -> Result<(), RepoError>;
    #[zddm(old)]
    #[allow(non_snake_case)]
    fn archiveOrder(&self, key: &OrderKey) -> Result<(), RepoError>;
    #[zddm(old)]
    fn ship_order<Q: std::borrow::Borrow<OrderKey>>(&self, key: &Q) -> Result<(), RepoError>;
    // A store handed out.
    #[zddm(old)]
    fn raw(&self) -> &zddm::Backend<OldStore>;
    #[zddm(old)]
    fn with_raw(&self, f: &dyn Fn(&zddm::Backend<OldStore>)) -> Result<(), RepoError>;
    #[zddm(old)]
    fn complete_order(&self, key: &OrderKey) -> Result<(), RepoError>;
    // Reads of the table's keys, and a write of another table: passing them through is fine.
    #[zddm(old)]
    fn find_history(&self, key: &OrderKey) -> Result<Vec<String>, RepoError>;
    #[zddm(old)]
    fn has_pending_transfer(&self, key: &OrderKey) -> Result<bool, RepoError>;
    #[zddm(old)]
    fn save_audit_entry(&self, line: &str) -> Result<(), RepoError>;
}

#[zddm::migrate(old = OldStore, new = NewStore, mode = versioned)]
pub trait Accounts {
    fn get_account(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    fn put_account(&self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    fn delete_account(&self, key: &OrderKey) -> Result<(), RepoError>;
    #[zddm(old)]
    fn store_all(&self, entries: impl IntoIterator<Item = (OrderKey, Order)>) -> Result<(), RepoError>;
}

fn main() {}
