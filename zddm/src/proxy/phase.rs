use std::fmt;
use std::str::FromStr;

use crate::rate::Rate;

/// The stage a migration is in. The safe order is the declaration order, each step reversible
/// except leaving `Complete`, which can only be entered from `Live`:
///
/// | phase | reads of admitted keys | writes and deletes of admitted keys |
/// |---|---|---|
/// | `Off` (kill switch) | OLD | OLD, then invalidate NEW's copy |
/// | `DualWrite` | OLD | OLD, then NEW |
/// | `Shadow` | OLD, compared with NEW (sampled); mismatches reported and invalidated | OLD, then NEW |
/// | `ReadThrough` | NEW; on a miss OLD, copied into NEW | OLD, then NEW |
/// | `Live` | NEW; on a miss OLD, copied into NEW; a NEW failure fails the read | OLD, then NEW (every key) |
/// | `Complete` | NEW only (every key) | NEW only (every key) |
///
/// Reads of keys the gate does not admit go to OLD in every phase but `Complete`. Their writes go to
/// OLD only, and invalidate NEW's copy if the gate's high-water mark ever admitted them — except in
/// `Live`, which writes every key to OLD, then NEW. `Live` and `Complete` are entered with the gate
/// at 100 %. In `Live` the gate may be lowered again: the keys it no longer admits are read from
/// OLD, which holds every acknowledged write (nothing is only in NEW before `Complete`), and `Live`
/// keeps writing them to NEW, so raising the gate again serves them from NEW at once. `Complete`
/// stops writing OLD, so its gate stays at 100 % (`Gate::set_rate` refuses to lower it).
/// `Complete` is entered only from `Live`, with no key in doubt (`docs/consistency.md` says why).
/// Setting the phase the proxy is already in changes nothing and is always accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// The kill switch: OLD only. NEW is touched only to invalidate copies that writes make stale.
    Off,
    /// Writes go to both stores; reads stay on OLD.
    DualWrite,
    /// Writes go to both stores; reads are served by OLD and compared with NEW.
    Shadow,
    /// NEW is a read-through / write-through cache of OLD (the classic migration cache).
    ReadThrough,
    /// NEW serves every read the gate admits, and a NEW failure fails it; every write still goes
    /// to OLD first, so lowering the gate or stepping back to `ReadThrough` is safe.
    Live,
    /// The migration is over: NEW only. OLD is no longer written, so there is no way back.
    Complete,
}

impl Phase {
    /// Every phase, in the safe order.
    pub const ALL: [Phase; 6] =
        [Phase::Off, Phase::DualWrite, Phase::Shadow, Phase::ReadThrough, Phase::Live, Phase::Complete];

    pub(crate) fn from_index(index: u8) -> Phase {
        Phase::ALL.get(usize::from(index)).copied().unwrap_or(Phase::Off)
    }

    pub(crate) fn index(self) -> u8 {
        self as u8
    }

    /// The name used by `Display` and `FromStr`.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Off => "off",
            Phase::DualWrite => "dual-write",
            Phase::Shadow => "shadow",
            Phase::ReadThrough => "read-through",
            Phase::Live => "live",
            Phase::Complete => "complete",
        }
    }

    /// Whether the phase is entered only with the gate at 100 % (and writes every key to NEW).
    pub(crate) fn ignores_gate(self) -> bool {
        matches!(self, Phase::Live | Phase::Complete)
    }

    /// Whether a move from `from` to `to` is allowed with the gate at `rate`. Staying in a phase
    /// changes nothing, so it is always allowed (`Live` with a gate lowered since included).
    pub(crate) fn check_transition(from: Phase, to: Phase, rate: Rate) -> Result<(), PhaseError> {
        if from == to {
            return Ok(());
        }
        if from == Phase::Complete && to != Phase::Complete {
            return Err(PhaseError::LeavingComplete { to });
        }
        if to == Phase::Complete && !matches!(from, Phase::Live | Phase::Complete) {
            return Err(PhaseError::CompleteNeedsLive { from });
        }
        Phase::check_start(to, rate)
    }

    /// Whether a proxy may start in `phase` with the gate at `rate` (a restarted process may start
    /// in any phase, but `Live` and `Complete` only with the gate at 100 %).
    pub(crate) fn check_start(phase: Phase, rate: Rate) -> Result<(), PhaseError> {
        if phase.ignores_gate() && rate != Rate::ALL {
            return Err(PhaseError::NeedsFullRate { phase, rate });
        }
        Ok(())
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Phase {
    type Err = PhaseError;

    fn from_str(text: &str) -> Result<Phase, PhaseError> {
        Phase::ALL
            .into_iter()
            .find(|phase| phase.name() == text.trim())
            .ok_or_else(|| PhaseError::Unknown { input: text.to_owned() })
    }
}

/// Why a phase change was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PhaseError {
    /// `Live` and `Complete` are entered with the gate at 100 %.
    #[error(
        "the {phase} phase is entered with the gate at 100%, but it admits {rate}: raise the gate to \
         100% first (or, to serve fewer keys from NEW, use read-through at the lower rate)"
    )]
    NeedsFullRate {
        /// The refused phase.
        phase: Phase,
        /// The gate's rate at the time.
        rate: Rate,
    },
    /// `Complete` stops writing OLD, so OLD is stale for every key written since.
    #[error("cannot go from complete back to {to}: OLD has not been written since the migration completed")]
    LeavingComplete {
        /// The refused phase.
        to: Phase,
    },
    /// `Complete` must follow `Live`, where the proxy keeps track of every key it removes from NEW.
    #[error(
        "cannot go from {from} to complete: move to live first (with NEW backfilled and verified), so \
         that every key the proxy removes from NEW is tracked and copied back before OLD is dropped"
    )]
    CompleteNeedsLive {
        /// The phase the change was refused from.
        from: Phase,
    },
    /// `Complete` stops reading OLD, so a key whose NEW copy is in doubt must be repaired first.
    #[error(
        "cannot complete the migration while {count} key(s) have a NEW copy in doubt after a failed or \
         cancelled write: read or write them again (each read repairs its key), then complete"
    )]
    KeysInDoubt {
        /// How many keys are in doubt (see `Proxy::keys_in_doubt`).
        count: usize,
    },
    /// `Complete` stops reading OLD, so NEW must first be shown to hold everything OLD holds.
    #[error(
        "cannot complete the migration without evidence that NEW holds everything: run a whole \
         verification in live (zddm::verify::Verify, or `zddm verify`) that finds NEW clean, after a \
         backfill (zddm::backfill::Backfill, or `zddm backfill`), then complete"
    )]
    Unverified,
    /// The proxy follows a fleet's plan, which changes only through the fleet.
    #[error("this proxy follows its fleet's plan: change the phase with Fleet::set_goal, for every instance at once")]
    InFleet,
    /// Text that names no phase.
    #[error("unknown phase {input:?}: expected off, dual-write, shadow, read-through, live or complete")]
    Unknown {
        /// The refused text.
        input: String,
    },
}
