//! `status`, `gate` and `phase`: the fleet's control record, read and steered.

use std::process::ExitCode;

use clap::Args;
use zddm::fleet::{Control, FleetError, Goal, Record};
use zddm::{Phase, PhaseError, Rate};

use crate::fail::{say, Failure};
use crate::open::{self, with_control, Url};

/// Where the fleet's control record is.
#[derive(Debug, Clone, Args)]
pub struct FleetArgs {
    /// The control record's store: sqlite:PATH, postgres://… or redis://…
    #[arg(long, value_name = "URL")]
    pub control: String,
    /// The fleet's name in that store (several migrations can share one).
    #[arg(long, value_name = "NAME")]
    pub fleet: String,
}

#[derive(Debug, Args)]
pub struct GateArgs {
    #[command(flatten)]
    fleet: FleetArgs,
    /// The share of keys: a percentage such as 25% or 0.5%.
    rate: String,
}

#[derive(Debug, Args)]
pub struct PhaseArgs {
    #[command(flatten)]
    fleet: FleetArgs,
    /// off, dual-write, shadow, read-through, live or complete.
    phase: String,
}

pub async fn status(args: FleetArgs) -> Result<ExitCode, Failure> {
    let control = open::control(&Url::parse(&args.control, "control")?, &args.fleet).await?;
    with_control!(&control, c => {
        let record = load(c, &args.fleet).await?;
        let (members, now) = c.members().await.map_err(Failure::store)?;
        let plan = record.plan;
        say!("fleet {} (gate salt {:?}), epoch {}", args.fleet, record.salt, record.epoch);
        say!("plan: {}, reads {}, writes {}, invalidates {}", plan.phase, plan.read, plan.write, plan.invalidate);
        say!("goal: {} at {}{}", record.goal.phase, record.goal.rate, if plan.step_toward(&record.goal).is_some() { " (moving)" } else { "" });
        match record.verified {
            Some(epoch) if epoch == record.epoch => say!("verified: yes, at this epoch: complete may be set"),
            Some(epoch) => say!("verified: at epoch {epoch}, which is past: verify again before completing"),
            None => say!("verified: no"),
        }
        say!("members: {}", members.len());
        for member in members {
            let behind = if member.epoch < record.epoch { " (behind)" } else { "" };
            say!("  {}: epoch {}{behind}, seen {:.1} s ago", member.instance, member.epoch, now.saturating_sub(member.seen_ms) as f64 / 1000.0);
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub async fn gate(args: GateArgs) -> Result<ExitCode, Failure> {
    let rate: Rate = args.rate.parse().map_err(|error| Failure::Input(format!("gate {:?}: {error}", args.rate)))?;
    let control = open::control(&Url::parse(&args.fleet.control, "control")?, &args.fleet.fleet).await?;
    with_control!(&control, c => {
        let record = load(c, &args.fleet.fleet).await?;
        set_goal(c, &record, Goal { phase: record.goal.phase, rate }).await
    })
}

pub async fn phase(args: PhaseArgs) -> Result<ExitCode, Failure> {
    let phase: Phase = args.phase.parse().map_err(|error: PhaseError| Failure::Input(error.to_string()))?;
    let control = open::control(&Url::parse(&args.fleet.control, "control")?, &args.fleet.fleet).await?;
    with_control!(&control, c => {
        let record = load(c, &args.fleet.fleet).await?;
        let rate = if matches!(phase, Phase::Live | Phase::Complete) { Rate::ALL } else { record.goal.rate };
        set_goal(c, &record, Goal { phase, rate }).await
    })
}

async fn load<C: Control>(control: &C, fleet: &str) -> Result<Record, Failure> {
    control.load().await.map_err(|error| {
        Failure::Input(format!(
            "no fleet named {fleet:?} in that control store ({error}): the first instance that joins the fleet creates it"
        ))
    })
}

/// `Fleet::set_goal`'s checks and change; a refused `complete` says where the fleet stands.
async fn set_goal<C: Control>(control: &C, record: &Record, goal: Goal) -> Result<ExitCode, Failure> {
    zddm::fleet::set_goal(control, goal).await.map_err(|error| match error {
        FleetError::Goal(PhaseError::Unverified) => Failure::Input(format!(
            "{} (the fleet is in {}{})",
            PhaseError::Unverified,
            record.plan.phase,
            match record.verified {
                Some(epoch) if epoch != record.epoch =>
                    format!(", verified at epoch {epoch} but now at {}", record.epoch),
                _ => String::new(),
            }
        )),
        FleetError::Goal(error) => Failure::Input(error.to_string()),
        other => Failure::store(other),
    })?;
    say!(
        "goal: {} at {}; the instances take it in steps at their polls (zddm status shows them)",
        goal.phase,
        goal.rate
    );
    Ok(ExitCode::SUCCESS)
}
