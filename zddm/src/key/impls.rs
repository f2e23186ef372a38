//! `MigrationKey` for every type in the spec table (`docs/key-encoding.md`).

use std::borrow::Cow;
use std::marker::PhantomData;
use std::rc::Rc;
use std::sync::Arc;

use super::schema::{schema_fields, wrapped};
use super::{ByteKey, KeyError, KeyReader, KeySink, MigrationKey};

macro_rules! widened {
    ($write:ident as $wide:ty, $read:ident, $schema:literal: $($ty:ty)*) => {$(
        impl MigrationKey for $ty {
            #[inline]
            fn encode_key<S: KeySink + ?Sized>(&self, sink: &mut S) {
                // Lossless: every integer type widens into its 64-bit family (usize/isize are at
                // most 64 bits on every platform Rust supports).
                sink.$write(*self as $wide);
            }

            fn write_schema(out: &mut String) {
                out.push_str($schema);
            }

            fn decode_key(reader: &mut KeyReader<'_>) -> Result<Self, KeyError> {
                let wide = reader.$read()?;
                <$ty>::try_from(wide).map_err(|_| reader.malformed(concat!("an integer out of range for ", stringify!($ty))))
            }
        }
    )*};
}

widened!(write_u64 as u64, read_u64, "u64": u8 u16 u32 u64 usize);
widened!(write_i64 as i64, read_i64, "i64": i8 i16 i32 i64 isize);
widened!(write_u128 as u128, read_u128, "u128": u128);
widened!(write_i128 as i128, read_i128, "i128": i128);

impl MigrationKey for bool {
    #[inline]
    fn encode_key<S: KeySink + ?Sized>(&self, sink: &mut S) {
        sink.write_bool(*self);
    }

    fn write_schema(out: &mut String) {
        out.push_str("bool");
    }

    fn decode_key(reader: &mut KeyReader<'_>) -> Result<Self, KeyError> {
        reader.read_bool()
    }
}

impl MigrationKey for char {
    #[inline]
    fn encode_key<S: KeySink + ?Sized>(&self, sink: &mut S) {
        sink.write_char(*self);
    }

    fn write_schema(out: &mut String) {
        out.push_str("char");
    }

    fn decode_key(reader: &mut KeyReader<'_>) -> Result<Self, KeyError> {
        reader.read_char()
    }
}

impl MigrationKey for str {
    #[inline]
    fn encode_key<S: KeySink + ?Sized>(&self, sink: &mut S) {
        sink.write_str(self);
    }

    fn write_schema(out: &mut String) {
        out.push_str("str");
    }
}

impl MigrationKey for String {
    #[inline]
    fn encode_key<S: KeySink + ?Sized>(&self, sink: &mut S) {
        sink.write_str(self);
    }

    fn write_schema(out: &mut String) {
        str::write_schema(out);
    }

    fn decode_key(reader: &mut KeyReader<'_>) -> Result<Self, KeyError> {
        reader.read_str().map(str::to_owned)
    }
}

impl<T: MigrationKey> MigrationKey for Option<T> {
    #[inline]
    fn encode_key<S: KeySink + ?Sized>(&self, sink: &mut S) {
        match self {
            None => sink.write_raw(&[0x00]),
            Some(value) => {
                sink.write_raw(&[0x01]);
                value.encode_key(sink);
            }
        }
    }

    fn write_schema(out: &mut String) {
        wrapped(out, "option", T::write_schema);
    }

    fn decode_key(reader: &mut KeyReader<'_>) -> Result<Self, KeyError> {
        if reader.read_some()? {
            T::decode_key(reader).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// A sequence's elements; the count is checked against what is left, so a corrupt count cannot
/// make it reserve gigabytes.
fn elements<T: MigrationKey>(reader: &mut KeyReader<'_>) -> Result<Vec<T>, KeyError> {
    let len = reader.read_len()?;
    let mut out = Vec::with_capacity(len.min(reader.remaining()));
    for _ in 0..len {
        out.push(T::decode_key(reader)?);
    }
    Ok(out)
}

impl<T: MigrationKey> MigrationKey for [T] {
    #[inline]
    fn encode_key<S: KeySink + ?Sized>(&self, sink: &mut S) {
        sink.write_len(self.len());
        for item in self {
            item.encode_key(sink);
        }
    }

    fn write_schema(out: &mut String) {
        wrapped(out, "seq", T::write_schema);
    }
}

impl<T: MigrationKey> MigrationKey for Vec<T> {
    #[inline]
    fn encode_key<S: KeySink + ?Sized>(&self, sink: &mut S) {
        self.as_slice().encode_key(sink);
    }

    fn write_schema(out: &mut String) {
        <[T]>::write_schema(out);
    }

    fn decode_key(reader: &mut KeyReader<'_>) -> Result<Self, KeyError> {
        elements(reader)
    }
}

impl<T: MigrationKey, const N: usize> MigrationKey for [T; N] {
    #[inline]
    fn encode_key<S: KeySink + ?Sized>(&self, sink: &mut S) {
        self.as_slice().encode_key(sink);
    }

    fn write_schema(out: &mut String) {
        <[T]>::write_schema(out);
    }

    fn decode_key(reader: &mut KeyReader<'_>) -> Result<Self, KeyError> {
        let at = reader.clone();
        elements(reader)?.try_into().map_err(|_| at.malformed("an array of another length"))
    }
}

macro_rules! transparent {
    ($(<$($lt:lifetime,)? $t:ident> $ty:ty),* $(,)?) => {$(
        impl<$($lt,)? $t: MigrationKey + ?Sized> MigrationKey for $ty {
            #[inline]
            fn encode_key<S: KeySink + ?Sized>(&self, sink: &mut S) {
                (**self).encode_key(sink);
            }

            fn write_schema(out: &mut String) {
                $t::write_schema(out);
            }
        }
    )*};
}

transparent!(<'a, T> &'a T, <'a, T> &'a mut T, <T> Box<T>, <T> Rc<T>, <T> Arc<T>);

impl<B> MigrationKey for Cow<'_, B>
where
    B: MigrationKey + ToOwned + ?Sized,
{
    #[inline]
    fn encode_key<S: KeySink + ?Sized>(&self, sink: &mut S) {
        (**self).encode_key(sink);
    }

    fn write_schema(out: &mut String) {
        B::write_schema(out);
    }
}

/// Encodes nothing: a marker field never changes a key's bytes.
impl<T: ?Sized> MigrationKey for PhantomData<T> {
    #[inline]
    fn encode_key<S: KeySink + ?Sized>(&self, _sink: &mut S) {}

    fn write_schema(_out: &mut String) {}

    fn decode_key(_reader: &mut KeyReader<'_>) -> Result<Self, KeyError> {
        Ok(PhantomData)
    }
}

macro_rules! tuples {
    ($(($($name:ident)*))*) => {$(
        impl<$($name: MigrationKey),*> MigrationKey for ($($name,)*) {
            #[inline]
            #[allow(non_snake_case, unused_variables)]
            fn encode_key<S: KeySink + ?Sized>(&self, sink: &mut S) {
                let ($($name,)*) = self;
                $($name.encode_key(sink);)*
            }

            fn write_schema(out: &mut String) {
                schema_fields(out, &[$($name::write_schema),*]);
            }

            #[allow(unused_variables)]
            fn decode_key(reader: &mut KeyReader<'_>) -> Result<Self, KeyError> {
                Ok(($($name::decode_key(reader)?,)*))
            }
        }
    )*};
}

tuples! {
    ()
    (A)
    (A B)
    (A B C)
    (A B C D)
    (A B C D E)
    (A B C D E F)
    (A B C D E F G)
    (A B C D E F G H)
    (A B C D E F G H I)
    (A B C D E F G H I J)
    (A B C D E F G H I J K)
    (A B C D E F G H I J K L)
}

macro_rules! byte_strings {
    ($(<$($lt:lifetime)? $(, const $n:ident: usize)?> $ty:ty $(=> $decode:expr)?),* $(,)?) => {$(
        impl<$($lt)? $(const $n: usize)?> ByteKey for $ty {
            #[inline]
            fn encode_bytes<S: KeySink + ?Sized>(&self, sink: &mut S) {
                sink.write_byte_string(self.as_ref());
            }

            fn write_schema(out: &mut String) {
                out.push_str("bytes");
            }

            $(fn decode_bytes(reader: &mut KeyReader<'_>) -> Result<Self, KeyError> {
                let decode: fn(&mut KeyReader<'_>) -> Result<Self, KeyError> = $decode;
                decode(reader)
            })?
        }
    )*};
}

// Shared and borrowed forms encode but do not read back (`MigrationKey::decode_key`).
byte_strings! {
    <> [u8],
    <> Vec<u8> => |reader| reader.read_byte_string().map(<[u8]>::to_vec),
    <, const N: usize> [u8; N] => |reader| {
        let at = reader.clone();
        reader.read_byte_string()?.try_into().map_err(|_| at.malformed("a byte string of another length"))
    },
    <> Box<[u8]> => |reader| reader.read_byte_string().map(Box::from),
    <> Rc<[u8]>,
    <> Arc<[u8]>,
    <'a> Cow<'a, [u8]>,
}

impl<T: ByteKey + ?Sized> ByteKey for &T {
    #[inline]
    fn encode_bytes<S: KeySink + ?Sized>(&self, sink: &mut S) {
        (**self).encode_bytes(sink);
    }

    fn write_schema(out: &mut String) {
        T::write_schema(out);
    }
}

impl<T: ByteKey> ByteKey for Option<T> {
    #[inline]
    fn encode_bytes<S: KeySink + ?Sized>(&self, sink: &mut S) {
        match self {
            None => sink.write_raw(&[0x00]),
            Some(value) => {
                sink.write_raw(&[0x01]);
                value.encode_bytes(sink);
            }
        }
    }

    fn write_schema(out: &mut String) {
        wrapped(out, "option", T::write_schema);
    }

    fn decode_bytes(reader: &mut KeyReader<'_>) -> Result<Self, KeyError> {
        if reader.read_some()? {
            T::decode_bytes(reader).map(Some)
        } else {
            Ok(None)
        }
    }
}

#[cfg(feature = "uuid")]
impl ByteKey for uuid::Uuid {
    #[inline]
    fn encode_bytes<S: KeySink + ?Sized>(&self, sink: &mut S) {
        sink.write_byte_string(self.as_bytes());
    }

    fn write_schema(out: &mut String) {
        out.push_str("bytes");
    }

    fn decode_bytes(reader: &mut KeyReader<'_>) -> Result<Self, KeyError> {
        let at = reader.clone();
        uuid::Uuid::from_slice(reader.read_byte_string()?).map_err(|_| at.malformed("a UUID that is not 16 bytes"))
    }
}

/// A UUID is its 16 bytes as a byte string.
#[cfg(feature = "uuid")]
impl MigrationKey for uuid::Uuid {
    #[inline]
    fn encode_key<S: KeySink + ?Sized>(&self, sink: &mut S) {
        self.encode_bytes(sink);
    }

    fn write_schema(out: &mut String) {
        <Self as ByteKey>::write_schema(out);
    }

    fn decode_key(reader: &mut KeyReader<'_>) -> Result<Self, KeyError> {
        Self::decode_bytes(reader)
    }
}

/// A key given by its canonical bytes, for tools that move keys without knowing their type (a
/// backfill or verification from the command line): it encodes to exactly these bytes and reads
/// back whatever bytes it is given. The bytes must be a canonical encoding; nothing checks that.
///
/// ```
/// use zddm::{MigrationKey, RawKey};
///
/// let bytes = (7u32, "A-1").key_bytes();
/// let raw = RawKey::from_key_bytes(&bytes).unwrap();
/// assert_eq!(raw.key_bytes(), bytes);
/// assert_eq!(raw.to_string(), "00000000000000070000000341 2d31".replace(' ', ""));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RawKey(pub Vec<u8>);

impl MigrationKey for RawKey {
    #[inline]
    fn encode_key<S: KeySink + ?Sized>(&self, sink: &mut S) {
        sink.write_raw(&self.0);
    }

    fn write_schema(out: &mut String) {
        out.push_str("raw");
    }

    fn decode_key(reader: &mut KeyReader<'_>) -> Result<Self, KeyError> {
        reader.read_raw(reader.remaining()).map(|bytes| RawKey(bytes.to_vec()))
    }
}

/// Lowercase hex of the bytes.
impl std::fmt::Display for RawKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

/// Marks a value as a byte string where no attribute can: in a tuple key, or as a whole key.
///
/// ```
/// use zddm::{Bytes, MigrationKey};
///
/// let key = (7u8, Bytes(vec![0xAB, 0xCD]));
/// assert_eq!(key.key_bytes(), [0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 2, 0xAB, 0xCD]);
/// // Unmarked, the same Vec<u8> is a sequence of integers, 8 bytes each.
/// assert_eq!(vec![0xABu8].key_bytes(), [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0xAB]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bytes<T>(pub T);

impl<T: ByteKey> MigrationKey for Bytes<T> {
    #[inline]
    fn encode_key<S: KeySink + ?Sized>(&self, sink: &mut S) {
        self.0.encode_bytes(sink);
    }

    fn write_schema(out: &mut String) {
        T::write_schema(out);
    }

    fn decode_key(reader: &mut KeyReader<'_>) -> Result<Self, KeyError> {
        T::decode_bytes(reader).map(Bytes)
    }
}
