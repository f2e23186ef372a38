use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use crate::fleet::{Control, Goal, Member, Plan, Record};

/// A control record in memory, for the instances of one process (tests, or threads standing in for
/// instances). Clones share the record.
#[derive(Debug, Clone)]
pub struct MemoryControl {
    state: Arc<Mutex<State>>,
    origin: Instant,
}

#[derive(Debug, Default)]
struct State {
    record: Option<Record>,
    members: BTreeMap<String, (u64, u64)>,
}

impl MemoryControl {
    /// No record yet: the first [`Fleet::join`](crate::fleet::Fleet::join) creates it.
    pub fn new() -> Self {
        MemoryControl { state: Arc::default(), origin: Instant::now() }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }
}

impl Default for MemoryControl {
    fn default() -> Self {
        Self::new()
    }
}

/// The record is read before it was opened: a bug in the caller, reported rather than panicked.
#[derive(Debug, thiserror::Error)]
#[error("the fleet's record does not exist yet: join the fleet first")]
pub struct NoRecord;

impl Control for MemoryControl {
    type Error = NoRecord;

    async fn open(&self, initial: &Record) -> Result<Record, NoRecord> {
        Ok(self.lock().record.get_or_insert_with(|| initial.clone()).clone())
    }

    async fn load(&self) -> Result<Record, NoRecord> {
        self.lock().record.clone().ok_or(NoRecord)
    }

    async fn advance(&self, epoch: u64, plan: &Plan) -> Result<bool, NoRecord> {
        let mut state = self.lock();
        let record = state.record.as_mut().ok_or(NoRecord)?;
        if record.epoch != epoch {
            return Ok(false);
        }
        record.epoch += 1;
        record.plan = *plan;
        Ok(true)
    }

    async fn set_goal(&self, goal: &Goal) -> Result<(), NoRecord> {
        self.lock().record.as_mut().ok_or(NoRecord)?.goal = *goal;
        Ok(())
    }

    async fn acknowledge(&self, instance: &str, epoch: u64) -> Result<(), NoRecord> {
        let now = self.now();
        self.lock().members.insert(instance.to_owned(), (epoch, now));
        Ok(())
    }

    async fn members(&self) -> Result<(Vec<Member>, u64), NoRecord> {
        let members = self
            .lock()
            .members
            .iter()
            .map(|(instance, &(epoch, seen_ms))| Member { instance: instance.clone(), epoch, seen_ms })
            .collect();
        Ok((members, self.now()))
    }

    async fn leave(&self, instance: &str) -> Result<(), NoRecord> {
        self.lock().members.remove(instance);
        Ok(())
    }

    async fn set_verified(&self, epoch: Option<u64>) -> Result<(), NoRecord> {
        self.lock().record.as_mut().ok_or(NoRecord)?.verified = epoch;
        Ok(())
    }
}
