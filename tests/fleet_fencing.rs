//! An instance that loses the control record: after `fence_after` it reads OLD and keeps NEW
//! honest on every write on its own; the fleet moves on without it once it has been silent for
//! `dead_after`, except into `Complete`, which waits for it until it is forgotten; when the record
//! is back, the instance follows the plan again. The record's outage is injected by a wrapper
//! around a real (memory) control record.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use zddm::fleet::{Control, Fleet, FleetConfig, FleetError, Goal, Member, MemoryControl, Plan, Record};
use zddm::verify::Verify;
use zddm::versioned::{Lookup, MemorySource, MemoryTarget, Source, Target, VersionedProxy};
use zddm::{Phase, Rate};

/// A control record that can be made unreachable.
#[derive(Clone)]
struct Flaky {
    inner: MemoryControl,
    down: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
#[error("the control record is unreachable (injected)")]
struct Down;

impl Flaky {
    fn check(&self) -> Result<(), Down> {
        if self.down.load(Ordering::SeqCst) {
            Err(Down)
        } else {
            Ok(())
        }
    }
}

impl Control for Flaky {
    type Error = Down;
    async fn open(&self, initial: &Record) -> Result<Record, Down> {
        self.check()?;
        Ok(self.inner.open(initial).await.unwrap())
    }
    async fn load(&self) -> Result<Record, Down> {
        self.check()?;
        Ok(self.inner.load().await.unwrap())
    }
    async fn advance(&self, epoch: u64, plan: &Plan) -> Result<bool, Down> {
        self.check()?;
        Ok(self.inner.advance(epoch, plan).await.unwrap())
    }
    async fn set_goal(&self, goal: &Goal) -> Result<(), Down> {
        self.check()?;
        self.inner.set_goal(goal).await.unwrap();
        Ok(())
    }
    async fn acknowledge(&self, instance: &str, epoch: u64) -> Result<(), Down> {
        self.check()?;
        self.inner.acknowledge(instance, epoch).await.unwrap();
        Ok(())
    }
    async fn members(&self) -> Result<(Vec<Member>, u64), Down> {
        self.check()?;
        Ok(self.inner.members().await.unwrap())
    }
    async fn leave(&self, instance: &str) -> Result<(), Down> {
        self.check()?;
        self.inner.leave(instance).await.unwrap();
        Ok(())
    }
    async fn set_verified(&self, epoch: Option<u64>) -> Result<(), Down> {
        self.check()?;
        self.inner.set_verified(epoch).await.unwrap();
        Ok(())
    }
}

const CONFIG: FleetConfig =
    FleetConfig { fence_after: Duration::from_millis(100), dead_after: Duration::from_millis(400) };

async fn settle<C: Control>(fleets: &[&Fleet<C>]) {
    for _ in 0..50 {
        let mut moving = false;
        for fleet in fleets {
            moving |= fleet.poll().await.unwrap().moving;
        }
        if !moving {
            return;
        }
    }
    panic!("the fleet did not settle");
}

#[tokio::test(flavor = "current_thread")]
async fn an_instance_that_loses_the_record_fences_itself_and_the_fleet_moves_on() {
    let record = MemoryControl::new();
    let down = Arc::new(AtomicBool::new(false));
    let flaky = Flaky { inner: record.clone(), down: down.clone() };
    let (old, new) = (Arc::new(MemorySource::<u64, u64>::new()), Arc::new(MemoryTarget::<u64, u64>::new()));
    let a = Fleet::join(flaky, "a", "fencing", CONFIG).await.unwrap();
    let always_up = Flaky { inner: record.clone(), down: Arc::new(AtomicBool::new(false)) };
    let b = Fleet::join(always_up, "b", "fencing", CONFIG).await.unwrap();
    let proxy_a = VersionedProxy::in_fleet(old.clone(), new.clone(), &a);
    let proxy_b = VersionedProxy::in_fleet(old.clone(), new.clone(), &b);
    b.set_goal(Goal { phase: Phase::ReadThrough, rate: Rate::ALL }).await.unwrap();
    settle(&[&a, &b]).await;
    proxy_a.put(&1, &10).await.unwrap();
    assert_eq!(new.lookup(&1).await.unwrap(), Lookup::Hit(10), "written through while in touch");

    // The record goes away for A.
    down.store(true, Ordering::SeqCst);
    let error = a.poll().await.unwrap_err();
    assert!(matches!(error, FleetError::Control(_)), "{error}");
    assert!(error.to_string().contains("unreachable"), "the cause is kept: {error}");
    assert!(!a.is_fenced(), "within fence_after the plan still holds");
    tokio::time::sleep(CONFIG.fence_after + Duration::from_millis(50)).await;
    assert!(a.is_fenced());
    let from_old = proxy_a.stats().reads_from_old;
    assert_eq!(proxy_a.get(&1).await.unwrap(), Some(10));
    assert_eq!(proxy_a.stats().reads_from_old, from_old + 1, "a fenced instance reads OLD");

    // B, meanwhile, is held back only until A has been silent for dead_after.
    b.set_goal(Goal { phase: Phase::ReadThrough, rate: Rate::percent(50.0).unwrap() }).await.unwrap();
    let first = b.poll().await.unwrap();
    assert!(first.advanced, "A acknowledged the current epoch before it went silent");
    let waiting = b.poll().await.unwrap();
    assert_eq!(waiting.waiting_for, vec!["a".to_string()], "A has not acknowledged the new epoch");
    tokio::time::sleep(CONFIG.dead_after).await;
    settle(&[&b]).await;
    assert_eq!(b.plan().read, Rate::percent(50.0).unwrap());

    // A fenced write keeps NEW honest whatever the plan has become: the value is written through
    // (A's plan writes every key through) and a later read through B sees it.
    proxy_a.put(&1, &11).await.unwrap();
    assert_eq!(old.get(&1).await.unwrap().map(|found| found.value), Some(11));
    assert_eq!(proxy_b.get(&1).await.unwrap(), Some(11));

    // Entering Complete waits even for a silent instance, until it is forgotten. It must be
    // earned first: in `Live`, by a verification recorded at the fleet's epoch.
    let complete = Goal { phase: Phase::Complete, rate: Rate::ALL };
    b.set_goal(Goal { phase: Phase::Live, rate: Rate::ALL }).await.unwrap();
    settle(&[&b]).await;
    let refused = b.set_goal(complete).await.unwrap_err();
    assert!(refused.to_string().contains("run a whole verification in live"), "{refused}");
    let report = Verify::new(&proxy_b).run(tokio::time::sleep, |_| {}).await.unwrap();
    assert!(report.earns_complete() && b.record_verification(&report).await.unwrap(), "{report}");
    b.set_goal(complete).await.unwrap();
    for _ in 0..20 {
        b.poll().await.unwrap();
    }
    assert_eq!(b.plan().phase, Phase::Live, "Live, but not Complete while A may still serve from OLD");
    assert!(b.poll().await.unwrap().waiting_for.contains(&"a".to_string()));

    // A is back: it follows the plan again and the fleet completes.
    down.store(false, Ordering::SeqCst);
    a.poll().await.unwrap();
    assert!(!a.is_fenced());
    settle(&[&a, &b]).await;
    assert_eq!((a.plan().phase, b.plan().phase), (Phase::Complete, Phase::Complete));
    assert_eq!(proxy_a.get(&1).await.unwrap(), Some(11));
}

#[tokio::test(flavor = "current_thread")]
async fn a_forgotten_instance_no_longer_holds_complete_back() {
    let record = MemoryControl::new();
    let a = Fleet::join(record.clone(), "a", "forget", CONFIG).await.unwrap();
    let gone = Fleet::join(record.clone(), "crashed", "forget", CONFIG).await.unwrap();
    drop(gone);
    let (old, new) = (MemorySource::<u64, u64>::new(), MemoryTarget::<u64, u64>::new());
    let proxy = VersionedProxy::in_fleet(&old, &new, &a);
    a.set_goal(Goal { phase: Phase::Live, rate: Rate::ALL }).await.unwrap();
    tokio::time::sleep(CONFIG.dead_after + Duration::from_millis(50)).await;
    settle(&[&a]).await;
    let report = Verify::new(&proxy).run(tokio::time::sleep, |_| {}).await.unwrap();
    assert!(a.record_verification(&report).await.unwrap(), "{report}");
    a.set_goal(Goal { phase: Phase::Complete, rate: Rate::ALL }).await.unwrap();
    tokio::time::sleep(CONFIG.dead_after + Duration::from_millis(50)).await;
    for _ in 0..20 {
        a.poll().await.unwrap();
    }
    assert_eq!(a.plan().phase, Phase::Live);
    a.forget("crashed").await.unwrap();
    settle(&[&a]).await;
    assert_eq!(a.plan().phase, Phase::Complete);
}

#[tokio::test(flavor = "current_thread")]
async fn bad_fleet_input_is_refused_with_its_reason() {
    let record = MemoryControl::new();
    let error = Fleet::join(
        record.clone(),
        "a",
        "salt",
        FleetConfig { fence_after: Duration::from_secs(5), dead_after: Duration::from_secs(5) },
    )
    .await
    .err()
    .expect("dead_after must exceed fence_after");
    assert!(error.to_string().contains("must be longer than fence_after"), "{error}");
    let a = Fleet::join(record.clone(), "a", "salt", CONFIG).await.unwrap();
    let error = Fleet::join(record.clone(), "b", "another salt", CONFIG).await.err().expect("salts differ");
    assert!(error.to_string().contains("same salt"), "{error}");
    let error = a.set_goal(Goal { phase: Phase::Live, rate: Rate::percent(50.0).unwrap() }).await.unwrap_err();
    assert!(error.to_string().contains("raise the gate to 100%"), "{error}");
    let proxy = VersionedProxy::in_fleet(MemorySource::<u64, u64>::new(), MemoryTarget::new(), &a);
    let error = proxy.set_phase(Phase::Off).unwrap_err();
    assert!(error.to_string().contains("Fleet::set_goal"), "{error}");
}

/// `keep_polling` moves the fleet toward its goal on its own, and reports every outcome.
#[tokio::test]
async fn keep_polling_moves_the_fleet_without_the_caller() {
    let record = MemoryControl::new();
    let fleet = Arc::new(Fleet::join(record, "only", "keep-polling", CONFIG).await.unwrap());
    fleet.set_goal(Goal { phase: Phase::Live, rate: Rate::ALL }).await.unwrap();
    let polls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let poller = {
        let (fleet, polls) = (fleet.clone(), polls.clone());
        tokio::spawn(async move {
            fleet
                .keep_polling(Duration::from_millis(1), tokio::time::sleep, |outcome| {
                    outcome.expect("the record is reachable");
                    polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                })
                .await
        })
    };
    for _ in 0..2_000 {
        if fleet.plan().phase == Phase::Live {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    poller.abort();
    assert_eq!(fleet.plan().phase, Phase::Live, "the poller took every step");
    assert!(polls.load(std::sync::atomic::Ordering::SeqCst) >= 2, "each poll was reported");
}
