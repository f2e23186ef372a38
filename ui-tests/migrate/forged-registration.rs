// A second implementation of the repository, outside the migration, forging the registration that
// `#[zddm::backend]` gives: `Registered` cannot be implemented outside zddm.
use zddm_suite::orders::{Order, OrderKey, Orders, OrdersMigration, RepoError};

struct Shortcut;

impl zddm::__private::Registered<OrdersMigration> for Shortcut {}

impl Orders for Shortcut {
    fn get_order(&self, _: &OrderKey) -> Result<Option<Order>, RepoError> {
        Ok(None)
    }
    fn put_order(&self, _: &OrderKey, _: &Order) -> Result<(), RepoError> {
        Ok(())
    }
    fn delete_order(&self, _: &OrderKey) -> Result<(), RepoError> {
        Ok(())
    }
}

// Following rustc's suggestion does not help: the type it names is private to zddm.
struct Persistent;

impl zddm::__private::Registered<OrdersMigration> for Persistent {
    fn __registered(_: zddm::backend::seal::Seal) {}
}

fn main() {}
