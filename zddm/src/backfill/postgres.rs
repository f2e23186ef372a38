//! Ranges handed out by PostgreSQL: one row per range, and a session-level advisory lock per range
//! that its worker holds as long as its connection lives. A worker that dies loses its connection,
//! so its lock, and the next worker resumes the range from the checkpoint in its row.

use super::ranges::{Claim, Range, Ranges};
use super::{Checkpoint, Checkpoints};
use crate::store::postgres::{lock_key, Pooled};
use crate::store::{from_sql, to_sql, PostgresError};

/// A backfill pass's ranges in the table `zddm_backfill_ranges` (created if missing), under the
/// pass's name. Each worker connects its own: its connection carries its locks.
pub struct PostgresRanges {
    pool: Pooled,
    pass: String,
    lock: i32,
}

/// Why a range could not be handed out or checkpointed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RangeError {
    /// PostgreSQL failed.
    #[error(transparent)]
    Store(#[from] PostgresError),
    /// This worker's connection lost the range's lock (it was reconnected), and another worker
    /// has taken the range: this one must stop copying it.
    #[error("range {part} of the backfill was taken over by another worker after this one lost its connection")]
    Lost {
        /// The range.
        part: u32,
    },
}

impl From<tokio_postgres::Error> for RangeError {
    fn from(error: tokio_postgres::Error) -> Self {
        RangeError::Store(error.into())
    }
}

const COLUMNS: &str = "position, done, scanned, copied, newer, outside";

impl PostgresRanges {
    /// Connects to `url` (one connection: it holds this worker's lock) for the pass `pass`.
    pub async fn connect(url: &str, pass: &str) -> Result<Self, RangeError> {
        let pool = Pooled::new(url, "zddm_backfill_ranges", 1)?;
        pool.prepare(
            "zddm_backfill_ranges",
            "CREATE TABLE IF NOT EXISTS zddm_backfill_ranges (pass text NOT NULL, part integer NOT NULL, \
             start_key bytea, end_key bytea, position bytea, done boolean NOT NULL, scanned bigint NOT NULL, \
             copied bigint NOT NULL, newer bigint NOT NULL, outside bigint NOT NULL, PRIMARY KEY (pass, part))",
            &[
                ("pass", "text"),
                ("part", "integer"),
                ("start_key", "bytea"),
                ("end_key", "bytea"),
                ("position", "bytea"),
                ("done", "boolean"),
                ("scanned", "bigint"),
                ("copied", "bigint"),
                ("newer", "bigint"),
                ("outside", "bigint"),
            ],
            "(pass, part, start_key, end_key, position, done, scanned, copied, newer, outside)",
            "",
        )
        .await?;
        // The first of the two-key advisory lock space names the pass; the second, the range.
        let lock = (lock_key(&format!("backfill {pass}")) >> 32) as i32;
        Ok(PostgresRanges { pool, pass: pass.to_owned(), lock })
    }
}

fn checkpoint(row: &tokio_postgres::Row) -> Checkpoint {
    Checkpoint {
        position: row.get(0),
        done: row.get(1),
        scanned: from_sql(row.get(2)),
        copied: from_sql(row.get(3)),
        newer: from_sql(row.get(4)),
        outside: from_sql(row.get(5)),
    }
}

impl Ranges for PostgresRanges {
    type Error = RangeError;
    type Claim<'a> = PostgresClaim<'a>;

    async fn plan(&self, ranges: &[Range]) -> Result<bool, RangeError> {
        let mut client = self.pool.client().await?;
        let transaction = client.transaction().await?;
        // Two workers planning at once: the second waits, then sees the first one's ranges.
        transaction.execute("SELECT pg_advisory_xact_lock($1, -1)", &[&self.lock]).await?;
        let existing = transaction
            .query_one("SELECT count(*) FROM zddm_backfill_ranges WHERE pass = $1", &[&self.pass])
            .await?
            .get::<_, i64>(0);
        if existing > 0 {
            return Ok(false);
        }
        let insert = transaction
            .prepare("INSERT INTO zddm_backfill_ranges VALUES ($1, $2, $3, $4, $3, false, 0, 0, 0, 0)")
            .await?;
        for range in ranges {
            let part = i32::try_from(range.part).unwrap_or(i32::MAX);
            transaction.execute(&insert, &[&self.pass, &part, &range.start, &range.end]).await?;
        }
        transaction.commit().await?;
        Ok(true)
    }

    async fn planned(&self) -> Result<bool, RangeError> {
        let client = self.pool.client().await?;
        let row = client.query_one("SELECT count(*) FROM zddm_backfill_ranges WHERE pass = $1", &[&self.pass]).await?;
        Ok(row.get::<_, i64>(0) > 0)
    }

    async fn claim(&self) -> Result<Option<PostgresClaim<'_>>, RangeError> {
        let client = self.pool.client().await?;
        let open = client
            .query(
                "SELECT part, start_key, end_key FROM zddm_backfill_ranges WHERE pass = $1 AND NOT done ORDER BY part",
                &[&self.pass],
            )
            .await?;
        for row in open {
            let part: i32 = row.get(0);
            // One lock at a time, outside the query: a lock function in a WHERE clause may be
            // evaluated for rows the query then drops, and those locks would stay held.
            let locked: bool =
                client.query_one("SELECT pg_try_advisory_lock($1, $2)", &[&self.lock, &part]).await?.get(0);
            if !locked {
                continue;
            }
            // Read again under the lock: the range may have been finished meanwhile.
            let done: bool = client
                .query_one("SELECT done FROM zddm_backfill_ranges WHERE pass = $1 AND part = $2", &[&self.pass, &part])
                .await?
                .get(0);
            if done {
                client.execute("SELECT pg_advisory_unlock($1, $2)", &[&self.lock, &part]).await?;
                continue;
            }
            let range = Range { part: u32::try_from(part).unwrap_or(0), start: row.get(1), end: row.get(2) };
            return Ok(Some(PostgresClaim { ranges: self, part, range }));
        }
        Ok(None)
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, RangeError> {
        let client = self.pool.client().await?;
        let rows = client
            .query(&format!("SELECT {COLUMNS} FROM zddm_backfill_ranges WHERE pass = $1 ORDER BY part"), &[&self.pass])
            .await?;
        Ok(rows.iter().map(checkpoint).collect())
    }
}

/// A range held by this worker's connection.
pub struct PostgresClaim<'a> {
    ranges: &'a PostgresRanges,
    part: i32,
    range: Range,
}

impl Checkpoints for PostgresClaim<'_> {
    type Error = RangeError;

    async fn load(&self) -> Result<Option<Checkpoint>, RangeError> {
        let client = self.ranges.pool.client().await?;
        let row = client
            .query_one(
                &format!("SELECT {COLUMNS} FROM zddm_backfill_ranges WHERE pass = $1 AND part = $2"),
                &[&self.ranges.pass, &self.part],
            )
            .await?;
        Ok(Some(checkpoint(&row)))
    }

    async fn save(&self, checkpoint: &Checkpoint) -> Result<(), RangeError> {
        let client = self.ranges.pool.client().await?;
        // Only while this connection holds the range: a reconnected one may take the lock again
        // (it stacks on a lock it still holds) unless another worker has it.
        let changed = client
            .execute(
                "UPDATE zddm_backfill_ranges SET position = $3, done = $4, scanned = $5, copied = $6, newer = $7, \
                 outside = $8 WHERE pass = $1 AND part = $2 AND pg_try_advisory_lock($9, $2)",
                &[
                    &self.ranges.pass,
                    &self.part,
                    &checkpoint.position,
                    &checkpoint.done,
                    &to_sql(checkpoint.scanned),
                    &to_sql(checkpoint.copied),
                    &to_sql(checkpoint.newer),
                    &to_sql(checkpoint.outside),
                    &self.ranges.lock,
                ],
            )
            .await?;
        if changed == 1 {
            Ok(())
        } else {
            Err(RangeError::Lost { part: self.range.part })
        }
    }
}

impl Claim for PostgresClaim<'_> {
    fn range(&self) -> &Range {
        &self.range
    }

    async fn release(self) -> Result<(), RangeError> {
        let client = self.ranges.pool.client().await?;
        // Every stacked hold of this range's lock: each checkpoint took one.
        for _ in 0..1_000_000 {
            let held: bool =
                client.query_one("SELECT pg_advisory_unlock($1, $2)", &[&self.ranges.lock, &self.part]).await?.get(0);
            if !held {
                break;
            }
        }
        Ok(())
    }
}
