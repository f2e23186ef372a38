//! A history checker for registers under concurrency: every call recorded with its start and end
//! on one clock (any `u64` that only grows: nanoseconds, or a logical tick), then checked for
//!
//! - **stale reads**: a read returning the value of write `w1` although another write `w2` of the
//!   key was acknowledged after `w1` had ended and before the read began (deletes are writes of
//!   "nothing"; a failed write may have taken effect, so it can be read, but it never counts as
//!   acknowledged; a dropped write may land at any later time);
//! - **phantoms**: a read returning a value no write of the key had begun when the read ended.
//!
//! Values must be unique per write.

use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A put (`Some`) or a delete (`None`).
    Write(Option<u64>),
    /// A read and what it returned.
    Read(Option<u64>),
}

#[derive(Debug, Clone, Copy)]
pub struct Event {
    pub key: u64,
    pub kind: Kind,
    pub start: u64,
    pub end: u64,
    /// The call returned successfully (a write acknowledged, a read answered).
    pub ok: bool,
    /// The caller dropped the call midway. A networked store may still apply it afterwards (the
    /// statement was sent), so its effect may land at any later time.
    pub dropped: bool,
}

/// Recorded calls.
/// Recorded calls.
#[derive(Default)]
pub struct History(Mutex<Vec<Event>>);

impl History {
    /// How many calls were recorded.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Whether no call was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a call.
    pub fn record(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }

    /// Stale reads and phantoms (see the module docs). Per key, acknowledged writes sorted by
    /// end with the running maximum of their starts answer "was anything acknowledged before
    /// this read, begun after that write ended?" in a binary search.
    pub fn violations(&self) -> Vec<String> {
        let events = self.0.lock().unwrap().clone();
        let far_future = u64::MAX;
        let mut by_value: HashMap<u64, Event> = HashMap::new();
        // Per key: acknowledged writes as (end, running max of start); deletes as (start, running
        // max of end), both sorted.
        let mut acked: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
        let mut deletes: HashMap<u64, Vec<(u64, u64)>> = HashMap::new();
        for event in &events {
            if let Kind::Write(value) = event.kind {
                if event.ok {
                    acked.entry(event.key).or_default().push((event.end, event.start));
                }
                // The latest its effect may land.
                let landed = if event.dropped { far_future } else { event.end };
                match value {
                    Some(value) => drop(by_value.insert(value, Event { end: landed, ..*event })),
                    None => deletes.entry(event.key).or_default().push((event.start, landed)),
                }
            }
        }
        for list in acked.values_mut().chain(deletes.values_mut()) {
            list.sort();
            let mut max = None;
            for entry in list.iter_mut() {
                max = Some(max.map_or(entry.1, |m: u64| m.max(entry.1)));
                entry.1 = max.unwrap();
            }
        }
        // The latest start of a write acknowledged before `at` (None: no such write).
        let latest_acked_start = |key: u64, at: u64| {
            let list = acked.get(&key)?;
            let n = list.partition_point(|(end, _)| *end < at);
            (n > 0).then(|| list[n - 1].1)
        };
        let mut out = Vec::new();
        for read in events.iter().filter(|e| e.ok) {
            let Kind::Read(got) = read.kind else { continue };
            // The latest the read's source may have ended: `None` for "never written".
            let source_end = match got {
                Some(value) => match by_value.get(&value) {
                    Some(write) if write.key == read.key && write.start < read.end => Some(write.end),
                    _ => {
                        out.push(format!("phantom: key {} read {value}, which no write to it had begun", read.key));
                        continue;
                    }
                },
                // Any delete begun before the read ended, the one that ended last being the best.
                None => deletes.get(&read.key).and_then(|list| {
                    let n = list.partition_point(|(start, _)| *start < read.end);
                    (n > 0).then(|| list[n - 1].1)
                }),
            };
            let overwritten = match (latest_acked_start(read.key, read.start), source_end) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(start), Some(end)) => start > end,
            };
            if overwritten {
                out.push(format!(
                    "stale read: key {} read {got:?}, overwritten by a write acknowledged before the read began",
                    read.key
                ));
            }
        }
        out
    }
}
