//! The workspace's test-suite package: helpers shared by the tests, examples and benches. Its
//! doctests compile and run the README's examples, so the README cannot drift from the code.
#![doc = include_str!("../../README.md")]

pub mod backends;
pub mod faults;
pub mod fleet;
pub mod history;
pub mod naive;
pub mod orders;
pub mod paired;
pub mod planted;
pub mod resume;
pub mod scenarios;
pub mod servers;
pub mod stall;
pub mod ui;
