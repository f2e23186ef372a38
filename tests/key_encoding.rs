//! The v1 encoding of each kind of value, written out by hand from `docs/key-encoding.md`, and the
//! schema that pins a key type's encoding.

use std::marker::PhantomData;

use zddm::{Bytes, MigrationKey};

fn be8(v: u64) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

#[test]
fn integers_widen_to_their_64_bit_family() {
    assert_eq!(7u8.key_bytes(), be8(7));
    assert_eq!(7u16.key_bytes(), be8(7));
    assert_eq!(7u32.key_bytes(), be8(7));
    assert_eq!(7usize.key_bytes(), be8(7));
    assert_eq!(u64::MAX.key_bytes(), [0xff; 8]);
    assert_eq!((-1i8).key_bytes(), [0xff; 8]);
    assert_eq!((-2i32).key_bytes(), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe]);
    assert_eq!(i64::MIN.key_bytes(), [0x80, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(1u128.key_bytes(), [&[0u8; 15][..], &[1]].concat());
    assert_eq!((-1i128).key_bytes(), [0xff; 16]);
    // Widening means the same number has the same bytes whatever its width: a u8 → u32 change is free.
    assert_eq!(200u8.key_bytes(), 200u64.key_bytes());
    assert_eq!(u8::schema(), u64::schema());
    // Signed and unsigned are different families.
    assert_ne!(u64::schema(), i64::schema());
}

#[test]
fn bool_char_and_text() {
    assert_eq!(false.key_bytes(), [0]);
    assert_eq!(true.key_bytes(), [1]);
    assert_eq!('A'.key_bytes(), [0, 0, 0, 0x41]);
    assert_eq!('😀'.key_bytes(), [0, 0x01, 0xf6, 0x00]);
    assert_eq!("".key_bytes(), [0, 0, 0, 0]);
    assert_eq!("é".key_bytes(), [0, 0, 0, 2, 0xc3, 0xa9]);
    // No normalisation: the decomposed form is another key.
    assert_eq!("e\u{301}".key_bytes(), [0, 0, 0, 3, b'e', 0xcc, 0x81]);
}

#[test]
fn options_sequences_and_byte_strings() {
    assert_eq!(None::<u64>.key_bytes(), [0]);
    assert_eq!(Some(0u64).key_bytes(), [&[1u8][..], &be8(0)].concat());
    assert_eq!(Some(None::<u8>).key_bytes(), [1, 0]);
    assert_eq!(Vec::<u64>::new().key_bytes(), [0, 0, 0, 0]);
    assert_eq!(vec![1u8, 2].key_bytes(), [&[0u8, 0, 0, 2][..], &be8(1), &be8(2)].concat());
    assert_eq!([true; 3].key_bytes(), [0, 0, 0, 3, 1, 1, 1]);
    assert_eq!(Bytes(vec![1u8, 2]).key_bytes(), [0, 0, 0, 2, 1, 2]);
    assert_eq!(Bytes([9u8; 3]).key_bytes(), [0, 0, 0, 3, 9, 9, 9]);
    assert_eq!(Bytes(&b"ab"[..]).key_bytes(), [0, 0, 0, 2, b'a', b'b']);
    let uuid: uuid::Uuid = "67e55044-10b1-426f-9247-bb680e5fe0c8".parse().unwrap();
    assert_eq!(uuid.key_bytes(), [&[0u8, 0, 0, 16][..], uuid.as_bytes()].concat());
}

#[test]
fn tuples_and_unit_concatenate_their_fields() {
    assert_eq!(().key_bytes(), Vec::<u8>::new());
    assert_eq!((1u8, "a").key_bytes(), [&be8(1)[..], &[0, 0, 0, 1, b'a']].concat());
    assert_eq!(PhantomData::<f64>.key_bytes(), Vec::<u8>::new());
}

#[derive(MigrationKey)]
struct OrderKey {
    tenant: u32,
    order: String,
}

/// The same fields, renamed and wrapped differently: the same encoding.
#[derive(MigrationKey)]
struct RenamedOrderKey(u64, Box<str>);

/// The fields in the other order: a different encoding, and the schema says so.
#[derive(MigrationKey)]
struct SwappedOrderKey {
    order: String,
    tenant: u32,
}

#[derive(MigrationKey)]
struct Nested {
    region: (),
    inner: OrderKey,
    marker: PhantomData<Vec<f32>>,
    suffix: (bool, (char,)),
}

#[derive(MigrationKey)]
struct Generic<K, V> {
    key: K,
    #[zddm(bytes)]
    value: V,
}

#[test]
fn the_worked_example_of_the_spec() {
    let key = OrderKey { tenant: 7, order: "A-1".into() };
    assert_eq!(key.key_bytes(), b"\0\0\0\0\0\0\0\x07\0\0\0\x03A-1");
}

#[test]
fn schemas_pin_the_encoding_not_the_names() {
    assert_eq!(OrderKey::schema(), "u64,str");
    assert_eq!(RenamedOrderKey::schema(), OrderKey::schema());
    assert_eq!(RenamedOrderKey(7, "A-1".into()).key_bytes(), OrderKey { tenant: 7, order: "A-1".into() }.key_bytes());
    assert_eq!(SwappedOrderKey::schema(), "str,u64");
    // Structs and tuples flatten; nothing-encoding fields leave no trace.
    assert_eq!(Nested::schema(), "u64,str,bool,char");
    assert_eq!(<Generic<Option<i8>, [u8; 4]>>::schema(), "option<i64>,bytes");
    assert_eq!(<Generic<u8, Option<Vec<u8>>>>::schema(), "u64,option<bytes>");
    assert_eq!(<Vec<(u8, String)>>::schema(), "seq<u64,str>");
    assert_eq!(<Option<Bytes<Vec<u8>>>>::schema(), "option<bytes>");
    assert_eq!(u128::schema() + &i128::schema(), "u128i128");
    assert_eq!(<uuid::Uuid>::schema(), "bytes");
}

#[derive(MigrationKey)]
enum Before {
    #[zddm(tag = 1)]
    A(u8),
    #[zddm(tag = 2)]
    B { name: String },
}

/// `Before` with its variants reordered and renamed: the tags keep the encoding.
#[derive(MigrationKey)]
enum After {
    #[zddm(tag = 2)]
    Named { title: String },
    #[zddm(tag = 1)]
    Numbered(u8),
}

#[test]
fn enum_tags_survive_reordering() {
    assert_eq!(Before::schema(), "enum{1:(u64),2:(str)}");
    assert_eq!(After::schema(), Before::schema());
    assert_eq!(After::Numbered(3).key_bytes(), Before::A(3).key_bytes());
    assert_eq!(After::Named { title: "x".into() }.key_bytes(), Before::B { name: "x".into() }.key_bytes());
    assert_eq!(Before::A(3).key_bytes(), [&[0u8, 0, 0, 1][..], &be8(3)].concat());
}
