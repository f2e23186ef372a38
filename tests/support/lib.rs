//! Shared helpers for the workspace tests, examples and benches.
