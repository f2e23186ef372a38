//! A repository whose stores need `&mut self` (here a store that is not even `Sync`): each store
//! sits behind an async mutex, and the migration still serialises per key and routes as usual.

use std::cell::RefCell;
use std::collections::HashMap;

use zddm::{Gate, Rate};
use zddm_suite::ui::{Order, OrderKey, RepoError};

#[zddm::migrate(old = Ledger, new = Journal)]
pub trait Orders {
    fn get(&self, key: &OrderKey) -> Result<Option<Order>, RepoError>;
    fn put(&mut self, key: &OrderKey, order: &Order) -> Result<(), RepoError>;
    fn delete(&mut self, key: &OrderKey) -> Result<(), RepoError>;
    #[zddm(new)]
    fn compact(&mut self) -> usize;
}

/// Single-threaded stores: `RefCell` is `Send` but not `Sync`.
#[derive(Default)]
pub struct Ledger(RefCell<HashMap<(u32, String), Order>>);
#[derive(Default)]
pub struct Journal(RefCell<HashMap<(u32, String), Order>>);

macro_rules! refcell_backend {
    ($store:ident) => {
        #[zddm::backend]
        impl Orders for $store {
            fn get(&self, key: &OrderKey) -> Result<Option<Order>, RepoError> {
                Ok(self.0.borrow().get(&(key.tenant, key.order.clone())).cloned())
            }
            fn put(&mut self, key: &OrderKey, order: &Order) -> Result<(), RepoError> {
                self.0.borrow_mut().insert((key.tenant, key.order.clone()), order.clone());
                Ok(())
            }
            fn delete(&mut self, key: &OrderKey) -> Result<(), RepoError> {
                self.0.borrow_mut().remove(&(key.tenant, key.order.clone()));
                Ok(())
            }
            fn compact(&mut self) -> usize {
                self.0.borrow().len()
            }
        }
    };
}

refcell_backend!(Ledger);
refcell_backend!(Journal);

#[test]
fn stores_behind_mut_self_are_migrated_from_many_threads() {
    let orders = std::sync::Arc::new(std::sync::Mutex::new(OrdersMigration::new(
        Ledger::default(),
        Journal::default(),
        Gate::new("exclusive", Rate::ALL),
    )));
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let orders = orders.clone();
            std::thread::spawn(move || {
                for i in 0..200u32 {
                    let key = OrderKey { tenant: t, order: format!("O-{}", i % 20) };
                    let mut orders = orders.lock().unwrap();
                    orders.put(&key, &Order { items: i }).unwrap();
                    assert_eq!(orders.get(&key).unwrap(), Some(Order { items: i }));
                    if i % 9 == 0 {
                        orders.delete(&key).unwrap();
                        assert_eq!(orders.get(&key).unwrap(), None);
                    }
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let mut orders = orders.lock().unwrap();
    assert!(orders.compact() > 0, "a &mut self method passed through to NEW");
    assert_eq!(orders.proxy().keys_in_doubt(), 0);
    assert!(orders.proxy().stats().reads_from_new > 0);
}

/// Stores that mutate their own fields through `&mut self`, with no interior mutability: the
/// backend hands its methods the store mutably.
#[zddm::migrate(old = PlainOld, new = PlainNew)]
pub trait Plain {
    fn get(&self, key: &u64) -> Result<Option<u64>, RepoError>;
    fn put(&mut self, key: &u64, value: &u64) -> Result<(), RepoError>;
    fn delete(&mut self, key: &u64) -> Result<(), RepoError>;
    #[zddm(old)]
    fn writes(&mut self) -> usize;
}

#[derive(Default)]
pub struct PlainOld {
    rows: HashMap<u64, u64>,
    writes: usize,
}
#[derive(Default)]
pub struct PlainNew {
    rows: HashMap<u64, u64>,
    writes: usize,
}

macro_rules! plain_backend {
    ($store:ident) => {
        #[zddm::backend]
        impl Plain for $store {
            fn get(&self, key: &u64) -> Result<Option<u64>, RepoError> {
                Ok(self.rows.get(key).cloned())
            }
            fn put(&mut self, key: &u64, value: &u64) -> Result<(), RepoError> {
                self.writes += 1;
                self.rows.insert(*key, *value);
                Ok(())
            }
            fn delete(&mut self, key: &u64) -> Result<(), RepoError> {
                self.writes += 1;
                self.rows.remove(key);
                Ok(())
            }
            fn writes(&mut self) -> usize {
                self.writes
            }
        }
    };
}

plain_backend!(PlainOld);
plain_backend!(PlainNew);

#[test]
fn stores_mutate_their_own_fields_through_mut_self() {
    let mut plain = PlainMigration::new(PlainOld::default(), PlainNew::default(), Gate::new("plain", Rate::ALL));
    plain.put(&1, &10).unwrap();
    plain.put(&2, &20).unwrap();
    plain.delete(&1).unwrap();
    assert_eq!((plain.get(&1).unwrap(), plain.get(&2).unwrap()), (None, Some(20)));
    assert_eq!(plain.writes(), 3, "OLD counted its own writes");
}
