//! Values as JSON, for the store adapters that keep them as text (SQLite, PostgreSQL, Redis).

use serde::de::DeserializeOwned;
use serde::Serialize;

/// A stored value that is not valid for the store's value type.
#[derive(Debug, thiserror::Error)]
#[error("the value stored under key {key} does not deserialize as the store's value type: {source}")]
pub struct DecodeError {
    /// The key, as hex of its canonical bytes.
    pub key: String,
    /// The JSON error.
    #[source]
    pub source: serde_json::Error,
}

/// A value that cannot be written as JSON.
#[derive(Debug, thiserror::Error)]
#[error("a value does not serialize to JSON: {0}")]
pub struct EncodeError(#[source] pub serde_json::Error);

pub(crate) fn encode<V: Serialize>(value: &V) -> Result<String, EncodeError> {
    serde_json::to_string(value).map_err(EncodeError)
}

pub(crate) fn decode<V: DeserializeOwned>(key: &[u8], text: &str) -> Result<V, DecodeError> {
    serde_json::from_str(text)
        .map_err(|source| DecodeError { key: key.iter().map(|b| format!("{b:02x}")).collect(), source })
}
