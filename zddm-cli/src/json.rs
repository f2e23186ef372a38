//! Values as the JSON text the stores hold: the command moves them without knowing their type.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// A value's JSON text, checked to be JSON and otherwise moved as it is.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Json(Box<RawValue>);

/// Equal as JSON, not as text: a row read as `to_jsonb` and the same value written by the
/// application's serializer differ in key order and spacing.
impl PartialEq for Json {
    fn eq(&self, other: &Json) -> bool {
        if self.0.get() == other.0.get() {
            return true;
        }
        let parse = |json: &Json| serde_json::from_str::<serde_json::Value>(json.0.get()).ok();
        matches!((parse(self), parse(other)), (Some(a), Some(b)) if a == b)
    }
}
