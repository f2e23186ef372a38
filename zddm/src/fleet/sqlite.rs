use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use crate::fleet::{record_from_columns, Control, Goal, Member, Plan, Record};
use crate::store::sqlite::open_file;
use crate::store::to_sql;
use crate::store::SqliteError;
use crate::versioned::now_ms;

/// A fleet's control record in a SQLite file, for instances on one machine (the embedded case):
/// the row `name` of `zddm_fleet`, and one row per instance in `zddm_fleet_members`. Several
/// migrations can share a file under different names.
pub struct SqliteControl {
    connection: Mutex<Connection>,
    name: String,
}

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS zddm_fleet (name TEXT PRIMARY KEY, salt TEXT NOT NULL, \
    epoch INTEGER NOT NULL, phase TEXT NOT NULL, read_ppm INTEGER NOT NULL, write_ppm INTEGER NOT NULL, \
    invalidate_ppm INTEGER NOT NULL, goal_phase TEXT NOT NULL, goal_ppm INTEGER NOT NULL); \
    CREATE TABLE IF NOT EXISTS zddm_fleet_members (name TEXT NOT NULL, instance TEXT NOT NULL, \
    epoch INTEGER NOT NULL, seen_ms INTEGER NOT NULL, PRIMARY KEY (name, instance)); \
    CREATE TABLE IF NOT EXISTS zddm_fleet_verified (name TEXT PRIMARY KEY, epoch INTEGER NOT NULL)";

impl SqliteControl {
    /// Opens (or creates) the control tables in the database file at `path`, for the fleet `name`.
    pub fn open(path: impl AsRef<Path>, name: &str) -> Result<Self, SqliteError> {
        let connection = open_file(path.as_ref())?;
        connection.execute_batch(SCHEMA)?;
        Ok(SqliteControl { connection: Mutex::new(connection), name: name.to_owned() })
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.connection.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn read(connection: &Connection, name: &str) -> Result<Option<Record>, SqliteError> {
        let row = connection
            .prepare_cached(
                "SELECT f.salt, f.epoch, f.phase, f.read_ppm, f.write_ppm, f.invalidate_ppm, f.goal_phase, \
                 f.goal_ppm, v.epoch FROM zddm_fleet f LEFT JOIN zddm_fleet_verified v ON v.name = f.name \
                 WHERE f.name = ?1",
            )?
            .query_row([name], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                    [row.get::<_, i64>(3)?, row.get::<_, i64>(4)?, row.get::<_, i64>(5)?],
                    row.get::<_, String>(6)?,
                    row.get::<_, i64>(7)?,
                    row.get::<_, Option<i64>>(8)?,
                ))
            })
            .optional()?;
        let Some((salt, epoch, phase, rates, goal_phase, goal_ppm, verified)) = row else { return Ok(None) };
        let epoch = u64::try_from(epoch).map_err(|_| SqliteError::Record { found: epoch.to_string() })?;
        record_from_columns(salt, epoch, &phase, rates, &goal_phase, goal_ppm, verified)
            .map(Some)
            .map_err(|found| SqliteError::Record { found })
    }
}

impl Control for SqliteControl {
    type Error = SqliteError;

    async fn open(&self, initial: &Record) -> Result<Record, SqliteError> {
        let mut connection = self.lock();
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let plan = &initial.plan;
        transaction.execute(
            "INSERT INTO zddm_fleet VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT(name) DO NOTHING",
            params![
                self.name,
                initial.salt,
                to_sql(initial.epoch),
                plan.phase.name(),
                plan.read.ppm(),
                plan.write.ppm(),
                plan.invalidate.ppm(),
                initial.goal.phase.name(),
                initial.goal.rate.ppm()
            ],
        )?;
        let record = Self::read(&transaction, &self.name)?;
        transaction.commit()?;
        record.ok_or_else(|| SqliteError::Record { found: "no record after creating it".into() })
    }

    async fn load(&self) -> Result<Record, SqliteError> {
        Self::read(&self.lock(), &self.name)?
            .ok_or_else(|| SqliteError::Record { found: format!("no record named {:?}", self.name) })
    }

    async fn advance(&self, epoch: u64, plan: &Plan) -> Result<bool, SqliteError> {
        let changed = self.lock().prepare_cached(
            "UPDATE zddm_fleet SET epoch = epoch + 1, phase = ?3, read_ppm = ?4, write_ppm = ?5, invalidate_ppm = ?6 \
             WHERE name = ?1 AND epoch = ?2",
        )?
        .execute(params![self.name, to_sql(epoch), plan.phase.name(), plan.read.ppm(), plan.write.ppm(), plan.invalidate.ppm()])?;
        Ok(changed == 1)
    }

    async fn set_goal(&self, goal: &Goal) -> Result<(), SqliteError> {
        self.lock().execute(
            "UPDATE zddm_fleet SET goal_phase = ?2, goal_ppm = ?3 WHERE name = ?1",
            params![self.name, goal.phase.name(), goal.rate.ppm()],
        )?;
        Ok(())
    }

    async fn acknowledge(&self, instance: &str, epoch: u64) -> Result<(), SqliteError> {
        self.lock()
            .prepare_cached(
                "INSERT INTO zddm_fleet_members VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT(name, instance) DO UPDATE SET epoch = excluded.epoch, seen_ms = excluded.seen_ms",
            )?
            .execute(params![self.name, instance, to_sql(epoch), to_sql(now_ms())])?;
        Ok(())
    }

    async fn members(&self) -> Result<(Vec<Member>, u64), SqliteError> {
        let connection = self.lock();
        let mut statement =
            connection.prepare_cached("SELECT instance, epoch, seen_ms FROM zddm_fleet_members WHERE name = ?1")?;
        let rows = statement.query_map([&self.name], |row| {
            Ok(Member {
                instance: row.get(0)?,
                epoch: u64::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
                seen_ms: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
            })
        })?;
        Ok((rows.collect::<Result<_, _>>()?, now_ms()))
    }

    async fn set_verified(&self, epoch: Option<u64>) -> Result<(), SqliteError> {
        let connection = self.lock();
        match epoch {
            Some(epoch) => connection.execute(
                "INSERT INTO zddm_fleet_verified VALUES (?1, ?2) ON CONFLICT(name) DO UPDATE SET epoch = excluded.epoch",
                params![self.name, to_sql(epoch)],
            )?,
            None => connection.execute("DELETE FROM zddm_fleet_verified WHERE name = ?1", params![self.name])?,
        };
        Ok(())
    }

    async fn leave(&self, instance: &str) -> Result<(), SqliteError> {
        self.lock().execute(
            "DELETE FROM zddm_fleet_members WHERE name = ?1 AND instance = ?2",
            params![self.name, instance],
        )?;
        Ok(())
    }
}

impl std::fmt::Debug for SqliteControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteControl").field("name", &self.name).finish_non_exhaustive()
    }
}
