//! The fleet's coverage plan and how it moves: pure functions, no I/O, so that tests and a model
//! checker can drive every step.

use crate::proxy::{Phase, PhaseError};
use crate::rate::Rate;

/// Which keys each kind of call covers, as gate rates, and the phase: what one epoch of the
/// fleet's control record tells every instance.
///
/// `read ≤ write ≤ invalidate` always. `invalidate` is the high-water mark: keys under it may be in
/// NEW, so every write of them keeps NEW honest; it never decreases, and neither does `write`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Plan {
    /// The phase every instance runs.
    pub phase: Phase,
    /// Keys read from NEW (copied into it on a miss) in `ReadThrough`, compared in `Shadow`.
    pub read: Rate,
    /// Keys written through to NEW.
    pub write: Rate,
    /// Keys whose writes at least invalidate NEW's copy.
    pub invalidate: Rate,
}

/// Where an operator wants the fleet to be; the plan moves there one acknowledged step at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Goal {
    /// The phase wanted.
    pub phase: Phase,
    /// The share of keys wanted in the migration.
    pub rate: Rate,
}

/// Where one call of a key goes under a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reach {
    /// OLD only.
    Old,
    /// Reads: NEW, OLD on a miss (copied in). Writes: OLD, then NEW.
    Through,
    /// Reads only: OLD, compared with NEW.
    Shadow,
    /// Writes only: OLD, then NEW's copy invalidated.
    Invalidate,
    /// NEW only (`Complete`).
    New,
}

impl Plan {
    /// The plan of a fleet that has just begun: nothing covered, in `phase`.
    pub const fn start(phase: Phase) -> Plan {
        Plan { phase, read: Rate::NONE, write: Rate::NONE, invalidate: Rate::NONE }
    }

    /// The plan one process with a plain [`Gate`](crate::Gate) runs: reads at its rate, writes at
    /// its high-water mark.
    pub(crate) fn local(phase: Phase, rate: Rate, high: Rate) -> Plan {
        Plan { phase, read: rate, write: high, invalidate: high }
    }

    /// Where a read of a key goes; `admitted(rate)` says whether `rate` admits the key.
    pub fn read_reach(&self, admitted: impl Fn(Rate) -> bool) -> Reach {
        match self.phase {
            Phase::Complete => Reach::New,
            Phase::Live => Reach::Through,
            Phase::ReadThrough if admitted(self.read) => Reach::Through,
            Phase::Shadow if admitted(self.read) => Reach::Shadow,
            _ => Reach::Old,
        }
    }

    /// Where a write of a key goes; `admitted(rate)` says whether `rate` admits the key.
    pub fn write_reach(&self, admitted: impl Fn(Rate) -> bool) -> Reach {
        match self.phase {
            Phase::Complete => Reach::New,
            Phase::Live => Reach::Through,
            Phase::Off if admitted(self.invalidate) => Reach::Invalidate,
            Phase::Off => Reach::Old,
            _ if admitted(self.write) => Reach::Through,
            _ if admitted(self.invalidate) => Reach::Invalidate,
            _ => Reach::Old,
        }
    }

    /// The keys this plan reads from NEW or copies into it (as a rate: keys under it).
    fn reads(&self) -> Rate {
        match self.phase {
            Phase::Live | Phase::Complete => Rate::ALL,
            Phase::ReadThrough | Phase::Shadow => self.read,
            Phase::Off | Phase::DualWrite => Rate::NONE,
        }
    }

    /// The keys this plan writes values of into NEW.
    fn writes(&self) -> Rate {
        match self.phase {
            Phase::Live | Phase::Complete => Rate::ALL,
            Phase::DualWrite | Phase::Shadow | Phase::ReadThrough => self.write,
            Phase::Off => Rate::NONE,
        }
    }

    /// The keys whose writes keep NEW honest (write through or invalidate).
    fn honest(&self) -> Rate {
        match self.phase {
            Phase::Live | Phase::Complete => Rate::ALL,
            _ => self.invalidate,
        }
    }

    /// Whether instances on `self` and on `other` may serve at the same time: every key one reads
    /// from NEW (or copies into it), the other writes through; every key one writes into NEW, the
    /// other keeps honest; and only `Live` runs beside `Complete` (whose writes skip OLD).
    pub fn coexists_with(&self, other: &Plan) -> bool {
        let one_way = |a: &Plan, b: &Plan| {
            a.reads() <= b.writes()
                && a.writes() <= b.honest()
                && (a.phase != Phase::Complete || matches!(b.phase, Phase::Live | Phase::Complete))
        };
        one_way(self, other) && one_way(other, self)
    }

    /// Whether the plan is well formed: `read ≤ write ≤ invalidate`, and all keys in `Live` and
    /// `Complete`.
    pub fn is_valid(&self) -> bool {
        self.read <= self.write
            && self.write <= self.invalidate
            && (!self.phase.ignores_gate() || self.read == Rate::ALL)
    }

    /// The next plan on the way to `goal`, or `None` once there. Each step can run beside the one
    /// before it ([`coexists_with`](Plan::coexists_with)); the fleet takes the next only once every
    /// instance has applied this one.
    ///
    /// Phases go down first (reads shrink first), then rates: a raise first invalidates the new
    /// keys, then writes them through, and only then reads them; a lowering only stops reading.
    /// Then phases go up. `invalidate` and `write` never decrease.
    pub fn step_toward(&self, goal: &Goal) -> Option<Plan> {
        let mut next = *self;
        if goal.phase < self.phase && self.phase != Phase::Complete {
            next.phase = Phase::ALL[usize::from(self.phase.index()) - 1];
        } else if goal.rate > self.invalidate {
            next.invalidate = goal.rate;
        } else if goal.rate > self.write {
            next.write = goal.rate;
        } else if goal.rate != self.read {
            next.read = goal.rate;
        } else if goal.phase > self.phase {
            next.phase = Phase::ALL[usize::from(self.phase.index()) + 1];
            if next.phase.ignores_gate() && self.read != Rate::ALL {
                return None;
            }
        }
        (next != *self).then_some(next)
    }

    /// Whether `goal` can be reached from here (see [`step_toward`](Plan::step_toward)).
    pub fn check_goal(&self, goal: &Goal) -> Result<(), PhaseError> {
        if self.phase == Phase::Complete && goal.phase != Phase::Complete {
            return Err(PhaseError::LeavingComplete { to: goal.phase });
        }
        if goal.phase.ignores_gate() && goal.rate != Rate::ALL {
            return Err(PhaseError::NeedsFullRate { phase: goal.phase, rate: goal.rate });
        }
        Ok(())
    }

    // One word for the request path: phase in bits 60..63, then read, write, invalidate in ppm
    // (20 bits each, 1_000_000 < 2^20).
    pub(crate) fn pack(&self) -> u64 {
        (u64::from(self.phase.index()) << 60)
            | (u64::from(self.read.ppm()) << 40)
            | (u64::from(self.write.ppm()) << 20)
            | u64::from(self.invalidate.ppm())
    }

    pub(crate) fn unpack(word: u64) -> Plan {
        let rate = |shift: u32| Rate::from_ppm(((word >> shift) & 0xF_FFFF) as u32).unwrap_or(Rate::ALL);
        Plan {
            phase: Phase::from_index(((word >> 60) & 0x7) as u8),
            read: rate(40),
            write: rate(20),
            invalidate: rate(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATES: [u32; 4] = [0, 250_000, 600_000, 1_000_000];

    fn rates() -> impl Iterator<Item = Rate> {
        RATES.into_iter().map(|ppm| Rate::from_ppm(ppm).unwrap())
    }

    fn plans() -> Vec<Plan> {
        let mut out = Vec::new();
        for phase in Phase::ALL {
            for read in rates() {
                for write in rates() {
                    for invalidate in rates() {
                        let plan = Plan { phase, read, write, invalidate };
                        if plan.is_valid() {
                            out.push(plan);
                        }
                    }
                }
            }
        }
        out
    }

    /// Every plan, every goal: each step can run beside the last, keeps the plan valid, never
    /// lowers the high-water mark or the write coverage, and the walk ends at the goal.
    #[test]
    fn every_step_toward_every_goal_is_safe_and_arrives() {
        let mut steps = 0;
        for start in plans() {
            for phase in Phase::ALL {
                for rate in rates() {
                    let goal = Goal { phase, rate };
                    if start.check_goal(&goal).is_err() {
                        continue;
                    }
                    let mut plan = start;
                    for _ in 0..16 {
                        let Some(next) = plan.step_toward(&goal) else { break };
                        assert!(next.is_valid(), "{plan:?} -> {next:?}");
                        assert!(plan.coexists_with(&next), "{plan:?} cannot run beside {next:?}");
                        assert!(next.invalidate >= plan.invalidate && next.write >= plan.write);
                        plan = next;
                        steps += 1;
                    }
                    assert_eq!(plan.step_toward(&goal), None, "still moving after 16 steps from {start:?}");
                    assert_eq!((plan.phase, plan.read), (goal.phase, goal.rate), "from {start:?}");
                }
            }
        }
        assert!(steps > 1000, "{steps} steps explored");
    }

    /// The rule is not vacuous: the obvious two-step raise (write and read together after
    /// invalidate, or read before everyone writes) and a jump to `Complete` are refused.
    #[test]
    fn unsafe_neighbours_are_refused() {
        let half = Rate::from_ppm(500_000).unwrap();
        let at = |phase, read, write, invalidate| Plan { phase, read, write, invalidate };
        let before = at(Phase::ReadThrough, Rate::NONE, Rate::NONE, Rate::NONE);
        assert!(!before.coexists_with(&at(Phase::ReadThrough, Rate::NONE, half, half)), "writes before invalidation");
        assert!(!at(Phase::ReadThrough, Rate::NONE, Rate::NONE, half).coexists_with(&at(
            Phase::ReadThrough,
            half,
            half,
            half
        )));
        assert!(!at(Phase::ReadThrough, Rate::ALL, Rate::ALL, Rate::ALL).coexists_with(&at(
            Phase::Complete,
            Rate::ALL,
            Rate::ALL,
            Rate::ALL
        )));
    }

    #[test]
    fn plans_pack_into_one_word() {
        for plan in plans() {
            assert_eq!(Plan::unpack(plan.pack()), plan);
        }
    }
}
