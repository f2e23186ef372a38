//! The derive's expansion refers to nothing in the user's scope: it compiles next to items that
//! shadow every name it could have used, without the prelude, and under strict lints.

#![deny(unused_qualifications, unsafe_code, warnings)]
#![no_implicit_prelude]

// Shadows for anything an expansion might name without an absolute path.
#[allow(dead_code)]
mod core {}
#[allow(dead_code)]
mod std {}
#[allow(dead_code)]
mod zddm {}
#[allow(dead_code)]
struct Result;
#[allow(dead_code)]
struct Ok;
#[allow(dead_code)]
struct Err;
#[allow(dead_code)]
struct Box;
#[allow(dead_code)]
struct String;
#[allow(dead_code)]
struct Vec;
#[allow(dead_code)]
struct Option;
#[allow(dead_code)]
struct Some;
#[allow(dead_code)]
trait MigrationKey {}
#[allow(dead_code)]
trait KeySink {}
#[allow(dead_code)]
trait ByteKey {}
#[allow(dead_code)]
trait Sized {}
#[allow(dead_code)]
fn schema_fields() {}

#[derive(::zddm::MigrationKey)]
struct Named<'a, T> {
    id: u64,
    name: &'a str,
    #[zddm(bytes)]
    digest: ::std::vec::Vec<u8>,
    extra: T,
}

#[derive(::zddm::MigrationKey)]
struct Tuple(i32, ::std::option::Option<::std::string::String>);

#[derive(::zddm::MigrationKey)]
struct Unit;

#[derive(::zddm::MigrationKey)]
enum Choice<T> {
    #[zddm(tag = 1)]
    One { __sink: u8, __out: T },
    #[zddm(tag = 2)]
    Two(#[zddm(bytes)] [u8; 2]),
    #[zddm(tag = 3)]
    Three,
}

#[derive(::zddm::MigrationKey)]
enum Never {}

#[test]
fn expansions_compile_and_encode_without_the_users_scope() {
    let named = Named { id: 1, name: "n", digest: ::std::vec![7], extra: Unit };
    ::std::assert_eq!(::zddm::MigrationKey::key_bytes(&named).len(), 8 + 5 + 5);
    ::std::assert_eq!(<Named<'_, Tuple> as ::zddm::MigrationKey>::schema(), "u64,str,bytes,i64,option<str>");
    ::std::assert_eq!(::zddm::MigrationKey::key_bytes(&Tuple(-1, ::std::option::Option::None)).len(), 9);
    ::std::assert_eq!(::zddm::MigrationKey::key_bytes(&Choice::One::<Unit> { __sink: 1, __out: Unit }).len(), 12);
    ::std::assert_eq!(::zddm::MigrationKey::key_bytes(&Choice::<Unit>::Two([1, 2])), [0, 0, 0, 2, 0, 0, 0, 2, 1, 2]);
    ::std::assert_eq!(::zddm::MigrationKey::key_bytes(&Choice::<Unit>::Three), [0, 0, 0, 3]);
    ::std::assert_eq!(<Choice<u8> as ::zddm::MigrationKey>::schema(), "enum{1:(u64,u64),2:(bytes),3:()}");
    ::std::assert_eq!(<Never as ::zddm::MigrationKey>::schema(), "enum{}");
}
