//! Values as JSON, for the store adapters that keep them as text (SQLite, PostgreSQL, Redis).
//!
//! The errors here follow [`zddm::Error`](crate::Error)'s design: the message carries the whole
//! cause, [`source`](std::error::Error::source) returns `None`, and the JSON error stays reachable
//! through an accessor.

use std::fmt;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::chain;

/// A stored value that is not valid for the store's value type.
///
/// Its message names the key and carries the JSON error (what is wrong, and where in the value).
/// Because the cause is in the message, [`source`](std::error::Error::source) returns `None`, so a
/// reporter walking the chain says it once; [`DecodeError::json_error`] returns the JSON error for
/// code (e.g. its `line()` and `column()`).
// Display and `std::error::Error` by hand: thiserror would make the field named `source` the
// `source()`.
#[derive(Debug)]
pub struct DecodeError {
    /// The key, as hex of its canonical bytes.
    pub key: String,
    /// The JSON error: in the message, and returned by [`DecodeError::json_error`] (not by
    /// `source()`, see [`DecodeError`]).
    pub source: serde_json::Error,
}

impl DecodeError {
    /// The JSON error, for code to inspect. The message of `self` already includes it.
    pub fn json_error(&self) -> &serde_json::Error {
        &self.source
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the value stored under key {} does not deserialize as the store's value type ({}): rewrite or \
             delete that value, or read the store with the value type that wrote it",
            self.key,
            chain(&self.source)
        )
    }
}

/// No `source()`: the cause is in the message (see [`DecodeError`]).
impl std::error::Error for DecodeError {}

/// A value that cannot be written as JSON.
///
/// Its message carries the JSON error. Because the cause is in the message,
/// [`source`](std::error::Error::source) returns `None`, so a reporter walking the chain says it
/// once; [`EncodeError::json_error`] (or the field) returns the JSON error for code.
#[derive(Debug)]
pub struct EncodeError(
    /// The JSON error: in the message, and returned by [`EncodeError::json_error`] (not by
    /// `source()`, see [`EncodeError`]).
    pub serde_json::Error,
);

impl EncodeError {
    /// The JSON error, for code to inspect. The message of `self` already includes it.
    pub fn json_error(&self) -> &serde_json::Error {
        &self.0
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a value does not serialize to JSON ({}): give the value type a `Serialize` that JSON can hold \
             (e.g. map keys that are strings or numbers)",
            chain(&self.0)
        )
    }
}

/// No `source()`: the cause is in the message (see [`EncodeError`]).
impl std::error::Error for EncodeError {}

pub(crate) fn encode<V: Serialize>(value: &V) -> Result<String, EncodeError> {
    serde_json::to_string(value).map_err(EncodeError)
}

pub(crate) fn decode<V: DeserializeOwned>(key: &[u8], text: &str) -> Result<V, DecodeError> {
    serde_json::from_str(text)
        .map_err(|source| DecodeError { key: key.iter().map(|b| format!("{b:02x}")).collect(), source })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::error::Error as _;

    use super::*;

    #[test]
    fn a_decode_error_says_its_cause_once_and_has_no_source() {
        let error = decode::<u32>(&[0xab, 0x01], "\"text\"").unwrap_err();
        let cause = serde_json::from_str::<u32>("\"text\"").unwrap_err().to_string();
        let message = error.to_string();
        assert!(message.starts_with("the value stored under key ab01 does not deserialize"), "{message}");
        assert_eq!(message.matches(&cause).count(), 1, "{message}");
        assert!(message.contains("rewrite or delete that value"), "{message}");
        assert!(error.source().is_none(), "the cause is in the message");
        assert_eq!(error.json_error().to_string(), cause);
        assert_eq!(error.json_error().line(), 1);
    }

    #[test]
    fn an_encode_error_says_its_cause_once_and_has_no_source() {
        let value = BTreeMap::from([((1, 2), 3)]);
        let error = encode(&value).unwrap_err();
        let cause = serde_json::to_string(&value).unwrap_err().to_string();
        let message = error.to_string();
        assert!(message.starts_with("a value does not serialize to JSON ("), "{message}");
        assert_eq!(message.matches(&cause).count(), 1, "{message}");
        assert!(error.source().is_none(), "the cause is in the message");
        assert_eq!(error.json_error().to_string(), cause);
    }
}
