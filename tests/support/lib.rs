//! The workspace's test-suite package. Its doctests compile and run the README's examples, so the
//! README cannot drift from the code.
#![doc = include_str!("../../README.md")]
