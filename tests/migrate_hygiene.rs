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
}

#[test]
fn expansions_compile_and_route_without_the_users_scope() {
    let orders = OrdersMigration::new(Legacy, Modern, ::zddm::Gate::new("hygiene", ::zddm::Rate::ALL));
    let key = OrderKey { tenant: 1, order: "A-1".into() };
    let found = Orders::get(&orders, &key).unwrap_or_else(|_| ::std::panic!("the read failed"));
    assert_eq!(found, ::core::option::Option::Some(Order { items: 3 }), "read through from OLD");
    ::std::assert_eq!(Orders::name(&orders), "legacy");
}
