//! The repository macros' expansions refer to nothing in the user's scope: they compile next to
//! shadowing items and under strict lints. (Unlike the derive's, they cannot compile under
//! `#![no_implicit_prelude]`: the generated `#[diagnostic::on_unimplemented]`, which makes a bypass
//! name the migrating type, is not resolvable there.)

#![deny(unused_qualifications, unsafe_code, warnings)]

#[allow(dead_code)]
mod core {}
#[allow(dead_code)]
mod std {}
#[allow(dead_code)]
struct Result;
#[allow(dead_code)]
struct Ok;
#[allow(dead_code)]
struct Err;
#[allow(dead_code)]
struct Box;
#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct Some;
#[allow(dead_code)]
struct String;
#[allow(dead_code)]
trait Store {}
#[allow(dead_code)]
trait From {}
#[allow(dead_code)]
fn block_on() {}

use ::zddm_suite::ui::{Order, OrderKey, RepoError};

#[::zddm::migrate(new = Modern, old = Legacy)]
pub trait Orders {
    fn get(&self, key: &OrderKey) -> ::core::result::Result<::core::option::Option<Order>, RepoError>;
    fn put(&self, key: &OrderKey, order: &Order) -> ::core::result::Result<(), RepoError>;
    fn delete(&self, key: &OrderKey) -> ::core::result::Result<(), RepoError>;
    #[zddm(old)]
    fn name(&self) -> &'static str;
    #[zddm(write)]
    fn archive(&self, key: &OrderKey, reason: &str) -> ::core::result::Result<bool, RepoError>;
}

pub struct Legacy;
pub struct Modern;

#[::zddm::backend]
impl Orders for Legacy {
    fn get(&self, _: &OrderKey) -> ::core::result::Result<::core::option::Option<Order>, RepoError> {
        ::core::result::Result::Ok(::core::option::Option::Some(Order { items: 3 }))
    }
    fn put(&self, _: &OrderKey, _: &Order) -> ::core::result::Result<(), RepoError> {
        ::core::result::Result::Ok(())
    }
    fn delete(&self, _: &OrderKey) -> ::core::result::Result<(), RepoError> {
        ::core::result::Result::Ok(())
    }
    fn name(&self) -> &'static str {
        "legacy"
    }
    fn archive(&self, _: &OrderKey, _: &str) -> ::core::result::Result<bool, RepoError> {
        ::core::result::Result::Ok(true)
    }
}

#[::zddm::backend]
impl Orders for Modern {
    fn get(&self, _: &OrderKey) -> ::core::result::Result<::core::option::Option<Order>, RepoError> {
        ::core::result::Result::Ok(::core::option::Option::None)
    }
    fn put(&self, _: &OrderKey, _: &Order) -> ::core::result::Result<(), RepoError> {
        ::core::result::Result::Ok(())
    }
    fn delete(&self, _: &OrderKey) -> ::core::result::Result<(), RepoError> {
        ::core::result::Result::Ok(())
    }
    fn name(&self) -> &'static str {
        "modern"
    }
    fn archive(&self, _: &OrderKey, _: &str) -> ::core::result::Result<bool, RepoError> {
        ::core::result::Result::Ok(false)
    }
}

#[test]
fn expansions_compile_and_route_without_the_users_scope() {
    let orders = OrdersMigration::new(Legacy, Modern, ::zddm::Gate::new("hygiene", ::zddm::Rate::ALL));
    let key = OrderKey { tenant: 1, order: "A-1".into() };
    let found = Orders::get(&orders, &key).unwrap_or_else(|_| ::std::panic!("the read failed"));
    assert_eq!(found, ::core::option::Option::Some(Order { items: 3 }), "read through from OLD");
    ::std::assert_eq!(Orders::name(&orders), "legacy");
    let archived = Orders::archive(&orders, &key, "hygiene").unwrap_or_else(|_| ::std::panic!("the update failed"));
    ::std::assert!(archived, "a second write, routed to OLD");
}

/// The fleet modes' expansions, next to the same shadowing items.
#[::zddm::migrate(old = VersionedLegacy, new = VersionedModern, mode = versioned)]
pub trait VersionedOrders {
    fn get(&self, key: &OrderKey) -> ::core::result::Result<::core::option::Option<Order>, RepoError>;
    fn put(&self, key: &OrderKey, order: &Order) -> ::core::result::Result<(), RepoError>;
    fn delete(&self, key: &OrderKey) -> ::core::result::Result<(), RepoError>;
}

pub struct VersionedLegacy(::zddm::versioned::MemorySource<OrderKey, Order>);
pub struct VersionedModern(::zddm::versioned::MemoryTarget<OrderKey, Order>);

/// Each store's trait impl, unused by the fleet modes (they route through `Source`/`Target`/`Cache`).
macro_rules! unused_repository {
    ($trait:ident for $store:ty) => {
        #[::zddm::backend]
        impl $trait for $store {
            fn get(&self, _: &OrderKey) -> ::core::result::Result<::core::option::Option<Order>, RepoError> {
                ::core::result::Result::Ok(::core::option::Option::None)
            }
            fn put(&self, _: &OrderKey, _: &Order) -> ::core::result::Result<(), RepoError> {
                ::core::result::Result::Ok(())
            }
            fn delete(&self, _: &OrderKey) -> ::core::result::Result<(), RepoError> {
                ::core::result::Result::Ok(())
            }
        }
    };
}

unused_repository!(VersionedOrders for VersionedLegacy);
unused_repository!(VersionedOrders for VersionedModern);

// Implemented on the stores themselves: the key and value types are another crate's.
impl ::zddm::versioned::Source<OrderKey, Order> for VersionedLegacy {
    type Error = ::zddm::KeyError;

    async fn get(
        &self,
        key: &OrderKey,
    ) -> ::core::result::Result<::core::option::Option<::zddm::versioned::Versioned<Order>>, Self::Error> {
        self.0.get(key).await
    }
    async fn put(&self, key: &OrderKey, value: &Order) -> ::core::result::Result<u64, Self::Error> {
        self.0.put(key, value).await
    }
    async fn delete(&self, key: &OrderKey) -> ::core::result::Result<u64, Self::Error> {
        self.0.delete(key).await
    }
    async fn next_version(&self, key: &OrderKey) -> ::core::result::Result<u64, Self::Error> {
        self.0.next_version(key).await
    }
}

impl ::zddm::versioned::Target<OrderKey, Order> for VersionedModern {
    type Error = ::zddm::KeyError;

    async fn lookup(&self, key: &OrderKey) -> ::core::result::Result<::zddm::versioned::Lookup<Order>, Self::Error> {
        self.0.lookup(key).await
    }
    async fn mark(&self, key: &OrderKey, grace_ms: u64) -> ::core::result::Result<(), Self::Error> {
        self.0.mark(key, grace_ms).await
    }
    async fn apply(
        &self,
        key: &OrderKey,
        change: ::zddm::versioned::Change<&Order>,
        version: u64,
        settle: bool,
    ) -> ::core::result::Result<(), Self::Error> {
        self.0.apply(key, change, version, settle).await
    }
    async fn fill(
        &self,
        key: &OrderKey,
        value: ::core::option::Option<&Order>,
        version: u64,
        token: ::core::option::Option<u64>,
    ) -> ::core::result::Result<::zddm::versioned::Filled, Self::Error> {
        self.0.fill(key, value, version, token).await
    }
    async fn pending_keys(
        &self,
        after: ::core::option::Option<&[u8]>,
        limit: usize,
    ) -> ::core::result::Result<::std::vec::Vec<::std::vec::Vec<u8>>, Self::Error> {
        self.0.pending_keys(after, limit).await
    }
    async fn purge(&self, older_than_ms: u64) -> ::core::result::Result<usize, Self::Error> {
        self.0.purge(older_than_ms).await
    }
}

#[::zddm::migrate(old = Legacy, new = CachedModern, mode = cached)]
pub trait CachedOrders {
    fn get(&self, key: &OrderKey) -> ::core::result::Result<::core::option::Option<Order>, RepoError>;
    fn put(&self, key: &OrderKey, order: &Order) -> ::core::result::Result<(), RepoError>;
    fn delete(&self, key: &OrderKey) -> ::core::result::Result<(), RepoError>;
}

pub struct CachedModern(::zddm::cached::MemoryCache<OrderKey, Order>);

#[::zddm::backend]
impl CachedOrders for Legacy {
    fn get(&self, _: &OrderKey) -> ::core::result::Result<::core::option::Option<Order>, RepoError> {
        ::core::result::Result::Ok(::core::option::Option::Some(Order { items: 5 }))
    }
    fn put(&self, _: &OrderKey, _: &Order) -> ::core::result::Result<(), RepoError> {
        ::core::result::Result::Ok(())
    }
    fn delete(&self, _: &OrderKey) -> ::core::result::Result<(), RepoError> {
        ::core::result::Result::Ok(())
    }
}

unused_repository!(CachedOrders for CachedModern);

impl ::zddm::cached::Cache<OrderKey, Order> for CachedModern {
    type Error = ::zddm::KeyError;

    async fn probe(&self, key: &OrderKey) -> ::core::result::Result<::zddm::cached::Probe<Order>, Self::Error> {
        self.0.probe(key).await
    }
    async fn mark(&self, key: &OrderKey, grace_ms: u64) -> ::core::result::Result<(), Self::Error> {
        self.0.mark(key, grace_ms).await
    }
    async fn invalidate(&self, key: &OrderKey, settle: bool) -> ::core::result::Result<(), Self::Error> {
        self.0.invalidate(key, settle).await
    }
    async fn fill(
        &self,
        key: &OrderKey,
        value: ::core::option::Option<&Order>,
        token: u64,
    ) -> ::core::result::Result<bool, Self::Error> {
        self.0.fill(key, value, token).await
    }
    async fn pending_keys(
        &self,
        after: ::core::option::Option<&[u8]>,
        limit: usize,
    ) -> ::core::result::Result<::std::vec::Vec<::std::vec::Vec<u8>>, Self::Error> {
        self.0.pending_keys(after, limit).await
    }
}

#[test]
fn fleet_mode_expansions_compile_and_route_without_the_users_scope() {
    let gate = || ::zddm::Gate::new("hygiene", ::zddm::Rate::ALL);
    let key = OrderKey { tenant: 1, order: "A-1".into() };
    let versioned = VersionedOrdersMigration::new(
        VersionedLegacy(::zddm::versioned::MemorySource::new()),
        VersionedModern(::zddm::versioned::MemoryTarget::new()),
        gate(),
    );
    VersionedOrders::put(&versioned, &key, &Order { items: 4 }).unwrap_or_else(|_| ::std::panic!("the write failed"));
    let found = VersionedOrders::get(&versioned, &key).unwrap_or_else(|_| ::std::panic!("the read failed"));
    ::std::assert_eq!(found, ::core::option::Option::Some(Order { items: 4 }));

    let cached = CachedOrdersMigration::new(Legacy, CachedModern(::zddm::cached::MemoryCache::new()), gate());
    let found = CachedOrders::get(&cached, &key).unwrap_or_else(|_| ::std::panic!("the read failed"));
    ::std::assert_eq!(found, ::core::option::Option::Some(Order { items: 5 }), "read through from OLD");
}

/// The trait's own types share names with the migrating type's parameters (`New`, `S`): the
/// expansion picks others.
type S = u64;

#[derive(Clone, Debug, PartialEq)]
pub struct New(u32);

#[::zddm::migrate(old = Plain, new = Plain)]
pub trait Shadowed {
    fn get(&self, key: &S) -> ::core::result::Result<::core::option::Option<New>, RepoError>;
    fn put(&self, key: &S, value: &New) -> ::core::result::Result<(), RepoError>;
    fn delete(&self, key: &S) -> ::core::result::Result<(), RepoError>;
}

/// Holds one value (`0`: none) under every key.
pub struct Plain(u32);

#[::zddm::backend]
impl Shadowed for Plain {
    fn get(&self, _: &S) -> ::core::result::Result<::core::option::Option<New>, RepoError> {
        ::core::result::Result::Ok(::core::option::Option::Some(New(self.0)).filter(|_| self.0 != 0))
    }
    fn put(&self, _: &S, _: &New) -> ::core::result::Result<(), RepoError> {
        ::core::result::Result::Ok(())
    }
    fn delete(&self, _: &S) -> ::core::result::Result<(), RepoError> {
        ::core::result::Result::Ok(())
    }
}

#[test]
fn names_in_the_trait_do_not_clash_with_the_expansion() {
    let shadowed = ShadowedMigration::new(Plain(7), Plain(0), ::zddm::Gate::new("hygiene", ::zddm::Rate::ALL));
    let found = Shadowed::get(&shadowed, &1).unwrap_or_else(|_| ::std::panic!("the read failed"));
    ::std::assert_eq!(found, ::core::option::Option::Some(New(7)), "read through from OLD");
}
