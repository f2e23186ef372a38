//! The canonical key encoding, v1 (`docs/key-encoding.md`).
//!
//! A migration decides per key, in every process of a fleet and in every language, whether the key
//! takes part. That needs bytes that do not depend on the platform, the compiler version or the
//! language: [`MigrationKey`] produces them, and [`KeySink`] receives them as a stream so the gate can
//! hash a key without allocating.

mod impls;
mod schema;

pub use impls::{Bytes, RawKey};
pub use schema::schema_fields;

/// A value that can be a migration key: it has a canonical, stable byte encoding.
///
/// Derive it with `#[derive(zddm::MigrationKey)]`; the encoding is specified byte for byte in
/// `docs/key-encoding.md` and is the same in every process, on every platform and in every language.
///
/// ```
/// use zddm::MigrationKey;
///
/// #[derive(MigrationKey)]
/// struct OrderKey {
///     tenant: u32,
///     order: String,
/// }
///
/// let key = OrderKey { tenant: 7, order: "A-1".into() };
/// assert_eq!(
///     key.key_bytes(),
///     [&[0, 0, 0, 0, 0, 0, 0, 7][..], &[0, 0, 0, 3], b"A-1"].concat(),
/// );
/// // Pin the shape of the encoding in a test: a reordered or retyped field changes it.
/// assert_eq!(OrderKey::schema(), "u64,str");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be part of a migration key",
    label = "`{Self}` does not implement `zddm::MigrationKey`",
    note = "derive it with `#[derive(zddm::MigrationKey)]`, or implement `zddm::MigrationKey` by hand",
    note = "floats, `HashMap` and `HashSet` have no stable encoding and are never keys: see docs/key-encoding.md"
)]
pub trait MigrationKey {
    /// Streams the canonical encoding of `self` into `sink`. Allocation-free for every built-in
    /// impl: this is what the gate hashes.
    fn encode_key<S: KeySink + ?Sized>(&self, sink: &mut S);

    /// Appends the shape of the encoding to `out`: the sequence of encoded kinds (`u64`, `i64`,
    /// `u128`, `i128`, `bool`, `char`, `str`, `bytes`, `option<…>`, `seq<…>`, `enum{tag:(…),…}`),
    /// comma-separated, with structs and tuples flattened because their bytes are just their fields.
    /// Two types with the same schema encode equal values to equal bytes.
    fn write_schema(out: &mut String);

    /// The schema (see [`write_schema`](MigrationKey::write_schema)) as a string, to pin a key
    /// type's encoding in a test.
    fn schema() -> String {
        let mut out = String::new();
        Self::write_schema(&mut out);
        out
    }

    /// The canonical encoding as bytes.
    ///
    /// # Panics
    ///
    /// If a string, byte string or sequence inside the key is longer than `u32::MAX` (the encoding's
    /// length prefix is a u32). Such a key needs more than 4 GiB of memory; use
    /// [`try_key_bytes`](MigrationKey::try_key_bytes) where that can happen.
    fn key_bytes(&self) -> Vec<u8> {
        match self.try_key_bytes() {
            Ok(bytes) => bytes,
            Err(err) => panic!("{err}"),
        }
    }

    /// The canonical encoding as bytes, or the reason the key cannot be encoded.
    fn try_key_bytes(&self) -> Result<Vec<u8>, KeyError> {
        let mut buf = KeyBuf::default();
        self.encode_key(&mut buf);
        buf.finish()
    }

    /// Reads a key of this type from the front of `reader`: the inverse of
    /// [`encode_key`](MigrationKey::encode_key). A backfill or a verifier scanning a store that
    /// keeps only canonical bytes needs it to hand typed keys to the stores.
    ///
    /// The derive implements it, as do the built-in owned types (integers, `bool`, `char`, `String`,
    /// `Option`, `Vec`, arrays, tuples, `Bytes`, `PhantomData`, `uuid::Uuid`). Borrowed and shared
    /// forms (`&T`, `Box`, `Rc`, `Arc`, `Cow`) and hand-written impls that do not override it
    /// answer [`KeyError::NotDecodable`].
    fn decode_key(reader: &mut KeyReader<'_>) -> Result<Self, KeyError>
    where
        Self: Sized,
    {
        Err(reader.not_decodable::<Self>())
    }

    /// The key whose canonical encoding is exactly `bytes`.
    ///
    /// ```
    /// use zddm::MigrationKey;
    ///
    /// #[derive(MigrationKey, Debug, PartialEq)]
    /// struct OrderKey {
    ///     tenant: u32,
    ///     order: String,
    /// }
    ///
    /// let key = OrderKey { tenant: 7, order: "A-1".into() };
    /// assert_eq!(OrderKey::from_key_bytes(&key.key_bytes()), Ok(key));
    /// assert!(OrderKey::from_key_bytes(&[0, 0, 0, 7]).is_err()); // cut short
    /// ```
    fn from_key_bytes(bytes: &[u8]) -> Result<Self, KeyError>
    where
        Self: Sized,
    {
        let mut reader = KeyReader::new(bytes).reading::<Self>();
        let key = Self::decode_key(&mut reader)?;
        reader.finish()?;
        Ok(key)
    }
}

/// Why a key cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A string, byte string or sequence longer than the encoding's u32 length prefix can say.
    #[error(
        "a length of {len} does not fit the key encoding's u32 length prefix: strings, byte strings \
         and sequences in a migration key must be shorter than 2^32 bytes or elements"
    )]
    TooLong {
        /// The length that did not fit.
        len: usize,
    },
    /// Bytes that are not the canonical encoding of a key of the type they were read as.
    #[error("not the canonical encoding of a `{type_name}`: {problem} at byte {at}")]
    Malformed {
        /// The type being read.
        type_name: &'static str,
        /// What was wrong.
        problem: &'static str,
        /// Where, from the start of the encoding.
        at: usize,
    },
    /// A key type that cannot be read back from its encoding.
    #[error(
        "`{type_name}` cannot be read back from its encoding: derive `zddm::MigrationKey`, use owned \
         field types (`String`, not `&str` or `Arc<str>`), or implement `MigrationKey::decode_key`"
    )]
    NotDecodable {
        /// The type that has no decoder.
        type_name: &'static str,
    },
}

/// Reads a canonical encoding back, kind by kind: what [`MigrationKey::decode_key`] is given.
///
/// Each method takes the next value of its kind from the front, or fails with
/// [`KeyError::Malformed`] saying where.
#[derive(Debug, Clone)]
pub struct KeyReader<'a> {
    bytes: &'a [u8],
    at: usize,
    /// The outermost type being read, for error messages.
    type_name: &'static str,
}

impl<'a> KeyReader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        KeyReader { bytes, at: 0, type_name: "key" }
    }

    /// How many bytes are left to read.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    /// An error saying that `T` cannot be read back.
    pub fn not_decodable<T: ?Sized>(&self) -> KeyError {
        KeyError::NotDecodable { type_name: std::any::type_name::<T>() }
    }

    /// An error at the current position.
    pub fn malformed(&self, problem: &'static str) -> KeyError {
        KeyError::Malformed { type_name: self.type_name, problem, at: self.at }
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), KeyError> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(self.malformed("bytes left over after the key"))
        }
    }

    /// The next `n` raw bytes.
    pub fn read_raw(&mut self, n: usize) -> Result<&'a [u8], KeyError> {
        let rest = &self.bytes[self.at..];
        if rest.len() < n {
            return Err(self.malformed("the encoding ends too early"));
        }
        self.at += n;
        Ok(&rest[..n])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], KeyError> {
        let mut out = [0; N];
        out.copy_from_slice(self.read_raw(N)?);
        Ok(out)
    }

    /// An unsigned integer widened to 8 bytes.
    pub fn read_u64(&mut self) -> Result<u64, KeyError> {
        self.array().map(u64::from_be_bytes)
    }

    /// A signed integer widened to 8 bytes.
    pub fn read_i64(&mut self) -> Result<i64, KeyError> {
        self.array().map(i64::from_be_bytes)
    }

    /// 16 bytes, unsigned.
    pub fn read_u128(&mut self) -> Result<u128, KeyError> {
        self.array().map(u128::from_be_bytes)
    }

    /// 16 bytes, two's complement.
    pub fn read_i128(&mut self) -> Result<i128, KeyError> {
        self.array().map(i128::from_be_bytes)
    }

    /// One byte, 0x00 or 0x01.
    pub fn read_bool(&mut self) -> Result<bool, KeyError> {
        match self.array::<1>()? {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(self.back(1).malformed("a bool that is neither 0x00 nor 0x01")),
        }
    }

    /// A Unicode scalar value in 4 bytes.
    pub fn read_char(&mut self) -> Result<char, KeyError> {
        let value = self.array().map(u32::from_be_bytes)?;
        char::from_u32(value).ok_or_else(|| self.back(4).malformed("a char that is not a Unicode scalar value"))
    }

    /// An enum variant's tag.
    pub fn read_tag(&mut self) -> Result<u32, KeyError> {
        self.array().map(u32::from_be_bytes)
    }

    /// A length or element count.
    pub fn read_len(&mut self) -> Result<usize, KeyError> {
        let len = self.array().map(u32::from_be_bytes)?;
        usize::try_from(len).map_err(|_| self.back(4).malformed("a length this platform cannot hold"))
    }

    /// An `Option`'s marker: `false` for 0x00 (none), `true` for 0x01 (a value follows).
    pub fn read_some(&mut self) -> Result<bool, KeyError> {
        match self.array::<1>()? {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(self.back(1).malformed("an option marker that is neither 0x00 nor 0x01")),
        }
    }

    /// A byte string: its length, then that many bytes.
    pub fn read_byte_string(&mut self) -> Result<&'a [u8], KeyError> {
        let len = self.read_len()?;
        self.read_raw(len)
    }

    /// Text: a byte string that must be UTF-8.
    pub fn read_str(&mut self) -> Result<&'a str, KeyError> {
        let start = self.at;
        let bytes = self.read_byte_string()?;
        std::str::from_utf8(bytes).map_err(|_| {
            self.at = start;
            self.malformed("text that is not UTF-8")
        })
    }

    /// Fails with `problem` at the current position unless `ok`; for integers narrower than their
    /// encoding, and the like.
    pub fn check(&self, ok: bool, problem: &'static str) -> Result<(), KeyError> {
        if ok {
            Ok(())
        } else {
            Err(self.malformed(problem))
        }
    }

    /// A reader positioned `n` bytes back, to report an error where the value began.
    fn back(&self, n: usize) -> KeyReader<'a> {
        KeyReader { at: self.at - n, ..self.clone() }
    }

    /// Names the type being read in error messages; the outermost `from_key_bytes` sets it.
    pub(crate) fn reading<T: ?Sized>(mut self) -> Self {
        self.type_name = std::any::type_name::<T>();
        self
    }
}

/// Receives a key's canonical encoding as a stream of bytes.
///
/// The provided methods write the encoding of each kind of value in the spec; a hand-written
/// [`MigrationKey`] impl calls them (or other keys' `encode_key`) and never writes raw bytes itself,
/// so its output stays canonical.
pub trait KeySink {
    /// Appends raw bytes to the encoding.
    fn write_raw(&mut self, bytes: &[u8]);

    /// Records that the key cannot be encoded. The sink must report it when it is finished;
    /// later writes may be ignored.
    fn reject(&mut self, error: KeyError);

    /// An unsigned integer of any width, widened to 8 big-endian bytes.
    #[inline]
    fn write_u64(&mut self, value: u64) {
        self.write_raw(&value.to_be_bytes());
    }

    /// A signed integer of any width, widened to 8 big-endian two's complement bytes.
    #[inline]
    fn write_i64(&mut self, value: i64) {
        self.write_raw(&value.to_be_bytes());
    }

    /// 16 big-endian bytes.
    #[inline]
    fn write_u128(&mut self, value: u128) {
        self.write_raw(&value.to_be_bytes());
    }

    /// 16 big-endian two's complement bytes.
    #[inline]
    fn write_i128(&mut self, value: i128) {
        self.write_raw(&value.to_be_bytes());
    }

    /// One byte, 0x00 or 0x01.
    #[inline]
    fn write_bool(&mut self, value: bool) {
        self.write_raw(&[u8::from(value)]);
    }

    /// The scalar value as 4 big-endian bytes.
    #[inline]
    fn write_char(&mut self, value: char) {
        self.write_raw(&u32::from(value).to_be_bytes());
    }

    /// An enum variant's tag: 4 big-endian bytes.
    #[inline]
    fn write_tag(&mut self, tag: u32) {
        self.write_raw(&tag.to_be_bytes());
    }

    /// A length or element count: 4 big-endian bytes, or a [`KeyError::TooLong`] rejection.
    #[inline]
    fn write_len(&mut self, len: usize) {
        match u32::try_from(len) {
            Ok(len) => self.write_raw(&len.to_be_bytes()),
            Err(_) => self.reject(KeyError::TooLong { len }),
        }
    }

    /// Text: its UTF-8 byte length, then the bytes as they are (no normalisation).
    #[inline]
    fn write_str(&mut self, value: &str) {
        self.write_byte_string(value.as_bytes());
    }

    /// A byte string: its length, then the raw bytes.
    #[inline]
    fn write_byte_string(&mut self, value: &[u8]) {
        self.write_len(value.len());
        self.write_raw(value);
    }
}

impl<S: KeySink + ?Sized> KeySink for &mut S {
    #[inline]
    fn write_raw(&mut self, bytes: &[u8]) {
        (**self).write_raw(bytes);
    }

    #[inline]
    fn reject(&mut self, error: KeyError) {
        (**self).reject(error);
    }
}

/// Collects an encoding into a `Vec<u8>`.
#[derive(Default)]
struct KeyBuf {
    bytes: Vec<u8>,
    error: Option<KeyError>,
}

impl KeyBuf {
    fn finish(self) -> Result<Vec<u8>, KeyError> {
        match self.error {
            None => Ok(self.bytes),
            Some(err) => Err(err),
        }
    }
}

impl KeySink for KeyBuf {
    fn write_raw(&mut self, bytes: &[u8]) {
        if self.error.is_none() {
            self.bytes.extend_from_slice(bytes);
        }
    }

    fn reject(&mut self, error: KeyError) {
        self.error.get_or_insert(error);
    }
}

/// A type that `#[zddm(bytes)]` (or the [`Bytes`] wrapper) encodes as a byte string: u32 length, then
/// the raw bytes. Unmarked, `Vec<u8>` and friends are sequences of integers (8 bytes each).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a byte string, so `#[zddm(bytes)]` cannot encode it",
    label = "`#[zddm(bytes)]` needs a byte string here",
    note = "`#[zddm(bytes)]` applies to `Vec<u8>`, `[u8; N]`, `&[u8]`, `Box<[u8]>`, `Arc<[u8]>`, `Cow<[u8]>` and `Option`s of them",
    note = "remove `#[zddm(bytes)]` to encode `{Self}` with its own `MigrationKey` impl"
)]
pub trait ByteKey {
    /// Writes `self` as a byte string.
    fn encode_bytes<S: KeySink + ?Sized>(&self, sink: &mut S);

    /// Appends the schema of the encoding (`bytes`, or `option<bytes>`).
    fn write_schema(out: &mut String);

    /// Reads a byte string of this type back; see [`MigrationKey::decode_key`].
    fn decode_bytes(reader: &mut KeyReader<'_>) -> Result<Self, KeyError>
    where
        Self: Sized,
    {
        Err(reader.not_decodable::<Self>())
    }
}
