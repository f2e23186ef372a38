//! One key space, several workers: OLD split into ranges of canonical key order, each taken by one
//! worker at a time through a lock of a real store, its checkpoint kept beside it.

use std::future::Future;

use super::Checkpoint;

/// A part of the key space: the entries after `start` up to and including `end` (canonical key
/// bytes; `None`: from the first key, to the last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// Its number, from 0 in key order.
    pub part: u32,
    /// The key before the range's first entry.
    pub start: Option<Vec<u8>>,
    /// The range's last key.
    pub end: Option<Vec<u8>>,
}

/// `parts` ranges from `boundaries`, the keys that end every range but the last (sorted).
pub fn ranges(boundaries: &[Vec<u8>]) -> Vec<Range> {
    let mut out = Vec::with_capacity(boundaries.len() + 1);
    let mut start = None;
    for (part, end) in boundaries.iter().enumerate() {
        out.push(Range { part: part as u32, start: start.clone(), end: Some(end.clone()) });
        start = Some(end.clone());
    }
    out.push(Range { part: boundaries.len() as u32, start, end: None });
    out
}

/// A claimed range: where its checkpoint lives while this worker holds it.
pub trait Claim: super::Checkpoints {
    /// The range.
    fn range(&self) -> &Range;

    /// Gives the range up (done or not): another worker may take it from its checkpoint.
    fn release(self) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Where the ranges of one backfill pass are handed out.
pub trait Ranges: Send + Sync {
    /// The store's error type.
    type Error: std::error::Error + Send + Sync + 'static;
    /// A range this worker holds.
    type Claim<'a>: Claim<Error = Self::Error> + Send + Sync
    where
        Self: 'a;

    /// Stores the pass's ranges unless they are stored already (by another worker: the first
    /// plan wins); whether these were stored.
    fn plan(&self, ranges: &[Range]) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Whether the pass has its ranges.
    fn planned(&self) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// A range not done and held by no worker, now held by this one; `None` if there is none.
    fn claim(&self) -> impl Future<Output = Result<Option<Self::Claim<'_>>, Self::Error>> + Send;

    /// Every range's checkpoint, by part (for progress and for knowing when the pass is done).
    fn checkpoints(&self) -> impl Future<Output = Result<Vec<Checkpoint>, Self::Error>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries_make_ranges_that_cover_the_key_space_once() {
        assert_eq!(ranges(&[]), [Range { part: 0, start: None, end: None }]);
        let split = ranges(&[vec![3], vec![7]]);
        assert_eq!(
            split,
            [
                Range { part: 0, start: None, end: Some(vec![3]) },
                Range { part: 1, start: Some(vec![3]), end: Some(vec![7]) },
                Range { part: 2, start: Some(vec![7]), end: None },
            ]
        );
    }
}
