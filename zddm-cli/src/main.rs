//! `zddm`: backfill, verify and steer a zero-downtime migration from the shell.
//!
//! The command works on the tables zddm lays out (`zddm::versioned`'s sources and targets) and on
//! a fleet's control record, over SQLite files, PostgreSQL and Redis. It does not know the
//! application's key or value types: keys travel as their canonical bytes and values as their JSON
//! text, which is exactly what those tables hold.

mod fail;
mod fleet;
mod json;
mod open;
mod pass;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::fail::Failure;

/// Backfill, verify and steer a zero-downtime migration.
///
/// A migration goes: raise the gate (`zddm gate`), move to live (`zddm phase live`), copy the keys
/// nobody reads (`zddm backfill`), show NEW holds everything (`zddm verify`), complete
/// (`zddm phase complete`).
#[derive(Debug, Parser)]
#[command(name = "zddm", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Copy the keys nobody reads from OLD into NEW; resumable, throttled, safe beside live writers.
    Backfill(pass::BackfillArgs),
    /// Compare OLD and NEW, repair what differs, and record a clean pass with the fleet.
    /// Exit status 3 when NEW was found different.
    Verify(pass::VerifyArgs),
    /// Show the fleet's plan, goal, verification and members.
    Status(fleet::FleetArgs),
    /// Set the share of keys that take part (e.g. 25%, 0.5%, 100%).
    Gate(fleet::GateArgs),
    /// Set the phase the fleet moves to (off, dual-write, shadow, read-through, live, complete).
    Phase(fleet::PhaseArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return Failure::Other(Box::new(error)).report(),
    };
    let outcome = runtime.block_on(async {
        tokio::select! {
            outcome = run(cli.command) => outcome,
            _ = tokio::signal::ctrl_c() => Err(Failure::Interrupted),
        }
    });
    // Blocking store calls may still run on the runtime's threads: do not wait for them.
    runtime.shutdown_background();
    match outcome {
        Ok(code) => code,
        Err(failure) => failure.report(),
    }
}

async fn run(command: Command) -> Result<ExitCode, Failure> {
    match command {
        Command::Backfill(args) => pass::backfill(args).await,
        Command::Verify(args) => pass::verify(args).await,
        Command::Status(args) => fleet::status(args).await,
        Command::Gate(args) => fleet::gate(args).await,
        Command::Phase(args) => fleet::phase(args).await,
    }
}
