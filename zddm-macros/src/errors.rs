//! Errors are collected, not returned at the first: one mistake is reported together with all others.

use syn::Error;

/// Collects every error instead of stopping at the first, so one mistake is reported with all others.
#[derive(Default)]
pub struct Errors(Option<Error>);

impl Errors {
    pub fn push(&mut self, error: Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    pub fn finish(self) -> Result<(), Error> {
        self.0.map_or(Ok(()), Err)
    }
}
