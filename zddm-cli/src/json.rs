//! Values as the JSON text the stores hold: the command moves them without knowing their type.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A value's JSON text, checked to be JSON and otherwise moved as it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Json(Box<RawValue>);

impl PartialEq for Json {
    fn eq(&self, other: &Json) -> bool {
        self.0.get() == other.0.get()
    }
}
