//! Reading keys back from their canonical bytes (`MigrationKey::from_key_bytes`): every encodable
//! value of a derived key comes back equal, and bytes that are not an encoding of the type are
//! refused with a message saying what and where — never a panic, never a wrong key.

use std::marker::PhantomData;
use std::sync::Arc;

use proptest::prelude::*;
use zddm::{Bytes, KeyError, MigrationKey};

#[derive(MigrationKey, Debug, Clone, PartialEq)]
enum Owner {
    #[zddm(tag = 7)]
    Team(#[zddm(bytes)] Vec<u8>),
    #[zddm(tag = 1)]
    User { id: u64, name: Option<String> },
    #[zddm(tag = 3)]
    System,
}

#[derive(MigrationKey, Debug, Clone, PartialEq)]
struct Unit;

#[derive(MigrationKey, Debug, Clone, PartialEq)]
struct Pair(i8, char);

#[derive(MigrationKey, Debug, Clone, PartialEq)]
struct Everything {
    small: u8,
    wide: u128,
    signed: i16,
    huge: i128,
    flag: bool,
    text: String,
    maybe: Option<Option<u32>>,
    list: Vec<Pair>,
    fixed: [u16; 3],
    #[zddm(bytes)]
    blob: Vec<u8>,
    #[zddm(bytes)]
    digest: [u8; 4],
    tuple: (u64, String, Bytes<Vec<u8>>),
    owner: Owner,
    unit: Unit,
    marker: PhantomData<fn() -> u8>,
    id: uuid::Uuid,
}

fn owner() -> impl Strategy<Value = Owner> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..6).prop_map(Owner::Team),
        (any::<u64>(), proptest::option::of(".{0,5}")).prop_map(|(id, name)| Owner::User { id, name }),
        Just(Owner::System),
    ]
}

fn everything() -> impl Strategy<Value = Everything> {
    (
        (any::<u8>(), any::<u128>(), any::<i16>(), any::<i128>(), any::<bool>(), ".{0,8}"),
        (
            any::<Option<Option<u32>>>(),
            proptest::collection::vec((any::<i8>(), any::<char>()).prop_map(|(a, b)| Pair(a, b)), 0..4),
            any::<[u16; 3]>(),
            proptest::collection::vec(any::<u8>(), 0..9),
            any::<[u8; 4]>(),
        ),
        (any::<u64>(), ".{0,4}", proptest::collection::vec(any::<u8>(), 0..4), owner(), any::<[u8; 16]>()),
    )
        .prop_map(|((small, wide, signed, huge, flag, text), (maybe, list, fixed, blob, digest), rest)| {
            let (n, s, b, owner, id) = rest;
            Everything {
                small,
                wide,
                signed,
                huge,
                flag,
                text,
                maybe,
                list,
                fixed,
                blob,
                digest,
                tuple: (n, s, Bytes(b)),
                owner,
                unit: Unit,
                marker: PhantomData,
                id: uuid::Uuid::from_bytes(id),
            }
        })
}

proptest! {
    #[test]
    fn every_key_reads_back_equal(key in everything()) {
        let bytes = key.key_bytes();
        prop_assert_eq!(Everything::from_key_bytes(&bytes), Ok(key));
    }

    #[test]
    fn a_cut_or_extended_encoding_is_refused(key in everything(), cut in any::<prop::sample::Index>()) {
        let bytes = key.key_bytes();
        let short = &bytes[..cut.index(bytes.len())];
        let refused = matches!(Everything::from_key_bytes(short), Err(KeyError::Malformed { .. }));
        prop_assert!(refused, "a cut at {} of {} bytes was read", short.len(), bytes.len());
        let mut long = bytes.clone();
        long.push(0);
        let refused = matches!(Everything::from_key_bytes(&long), Err(KeyError::Malformed { .. }));
        prop_assert!(refused, "a trailing byte was accepted");
    }
}

fn problem(result: Result<impl std::fmt::Debug, KeyError>) -> String {
    match result {
        Err(error @ KeyError::Malformed { .. }) => error.to_string(),
        other => panic!("expected a malformed-key error, got {other:?}"),
    }
}

#[test]
fn malformed_bytes_say_what_and_where() {
    let text = problem(u8::from_key_bytes(&256u64.key_bytes()));
    assert_eq!(text, "not the canonical encoding of a `u8`: an integer out of range for u8 at byte 8");
    assert!(problem(bool::from_key_bytes(&[2])).contains("a bool that is neither 0x00 nor 0x01 at byte 0"));
    assert!(problem(Option::<u8>::from_key_bytes(&[9])).contains("option marker"));
    assert!(problem(char::from_key_bytes(&0xD800u32.to_be_bytes())).contains("not a Unicode scalar value"));
    assert!(problem(String::from_key_bytes(&[0, 0, 0, 1, 0xff])).contains("not UTF-8 at byte 0"));
    assert!(problem(String::from_key_bytes(&[0, 0, 0, 9, b'a'])).contains("ends too early"));
    assert!(problem(<[u8; 2]>::from_key_bytes(&[1u8].key_bytes())).contains("an array of another length"));
    let tag_9 = [0, 0, 0, 9];
    let text = problem(Owner::from_key_bytes(&tag_9));
    assert!(text.contains("`key_decoding::Owner`") && text.contains("a tag that names no variant"), "{text}");
    // A huge count with nothing behind it fails on the first missing element, without reserving.
    assert!(problem(Vec::<u64>::from_key_bytes(&[0xff, 0xff, 0xff, 0xff])).contains("ends too early"));
}

#[derive(MigrationKey, Debug)]
struct Borrowed<'a> {
    tenant: u32,
    name: &'a str,
}

#[derive(MigrationKey, Debug)]
struct Shared {
    name: Arc<str>,
}

#[test]
fn borrowed_and_shared_fields_cannot_be_read_back_and_say_so() {
    let bytes = Borrowed { tenant: 1, name: "a" }.key_bytes();
    let error = Borrowed::from_key_bytes(&bytes).unwrap_err();
    assert!(matches!(error, KeyError::NotDecodable { .. }));
    assert!(error.to_string().contains("`&str` cannot be read back"), "{error}");
    assert!(error.to_string().contains("use owned field types"), "{error}");
    let error = Shared::from_key_bytes(&Shared { name: "a".into() }.key_bytes()).unwrap_err();
    assert!(error.to_string().contains("alloc::sync::Arc<str>"), "{error}");
}
