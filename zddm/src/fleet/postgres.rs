use crate::fleet::{record_from_columns, Control, Goal, Member, Plan, Record};
use crate::store::postgres::Pooled;
use crate::store::to_sql;
use crate::store::PostgresError;

/// A fleet's control record in PostgreSQL: the row `name` of `zddm_fleet`, and one row per
/// instance in `zddm_fleet_members` (so acknowledgements never contend on one row); heartbeats on
/// the server's clock. Several migrations can share the tables under different names.
pub struct PostgresControl {
    pool: Pooled,
    name: String,
}

const NOW: &str = "(extract(epoch from now()) * 1000)::bigint";

fn ppm(rate: crate::Rate) -> i64 {
    i64::from(rate.ppm())
}

impl PostgresControl {
    /// Connects to `url` (a pool of one connection is plenty: one poll at a time) and creates the
    /// control tables if missing, for the fleet `name`.
    pub async fn connect(url: &str, name: &str) -> Result<Self, PostgresError> {
        let pool = Pooled::new(url, "zddm_fleet", 1)?;
        pool.prepare(
            "zddm_fleet",
            "CREATE TABLE IF NOT EXISTS zddm_fleet (name text PRIMARY KEY, salt text NOT NULL, epoch bigint NOT NULL, \
             phase text NOT NULL, read_ppm bigint NOT NULL, write_ppm bigint NOT NULL, invalidate_ppm bigint NOT NULL, \
             goal_phase text NOT NULL, goal_ppm bigint NOT NULL)",
            &[
                ("name", "text"),
                ("salt", "text"),
                ("epoch", "bigint"),
                ("phase", "text"),
                ("read_ppm", "bigint"),
                ("write_ppm", "bigint"),
                ("invalidate_ppm", "bigint"),
                ("goal_phase", "text"),
                ("goal_ppm", "bigint"),
            ],
            "(name, salt, epoch, phase, read_ppm, write_ppm, invalidate_ppm, goal_phase, goal_ppm)",
            "CREATE TABLE IF NOT EXISTS zddm_fleet_members (name text NOT NULL, instance text NOT NULL, \
             epoch bigint NOT NULL, seen_ms bigint NOT NULL, PRIMARY KEY (name, instance)); \
             CREATE TABLE IF NOT EXISTS zddm_fleet_verified (name text PRIMARY KEY, epoch bigint NOT NULL)",
        )
        .await?;
        Ok(PostgresControl { pool, name: name.to_owned() })
    }

    async fn read(&self) -> Result<Option<Record>, PostgresError> {
        let client = self.pool.client().await?;
        let statement = client
            .prepare_cached(
                "SELECT f.salt, f.epoch, f.phase, f.read_ppm, f.write_ppm, f.invalidate_ppm, f.goal_phase, \
                 f.goal_ppm, v.epoch FROM zddm_fleet f LEFT JOIN zddm_fleet_verified v ON v.name = f.name \
                 WHERE f.name = $1",
            )
            .await?;
        let Some(row) = client.query_opt(&statement, &[&self.name]).await? else { return Ok(None) };
        let epoch: i64 = row.get(1);
        let epoch = u64::try_from(epoch).map_err(|_| PostgresError::Record { found: epoch.to_string() })?;
        let rates = [row.get(3), row.get(4), row.get(5)];
        record_from_columns(row.get(0), epoch, row.get(2), rates, row.get(6), row.get(7), row.get(8))
            .map(Some)
            .map_err(|found| PostgresError::Record { found })
    }
}

impl Control for PostgresControl {
    type Error = PostgresError;

    async fn open(&self, initial: &Record) -> Result<Record, PostgresError> {
        let client = self.pool.client().await?;
        let plan = &initial.plan;
        client
            .execute(
                "INSERT INTO zddm_fleet VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (name) DO NOTHING",
                &[
                    &self.name,
                    &initial.salt,
                    &to_sql(initial.epoch),
                    &plan.phase.name(),
                    &ppm(plan.read),
                    &ppm(plan.write),
                    &ppm(plan.invalidate),
                    &initial.goal.phase.name(),
                    &ppm(initial.goal.rate),
                ],
            )
            .await?;
        drop(client);
        self.read().await?.ok_or_else(|| PostgresError::Record { found: "no record after creating it".into() })
    }

    async fn load(&self) -> Result<Record, PostgresError> {
        self.read().await?.ok_or_else(|| PostgresError::Record { found: format!("no record named {:?}", self.name) })
    }

    async fn advance(&self, epoch: u64, plan: &Plan) -> Result<bool, PostgresError> {
        let client = self.pool.client().await?;
        let changed = client
            .execute(
                "UPDATE zddm_fleet SET epoch = epoch + 1, phase = $3, read_ppm = $4, write_ppm = $5, \
                 invalidate_ppm = $6 WHERE name = $1 AND epoch = $2",
                &[
                    &self.name,
                    &to_sql(epoch),
                    &plan.phase.name(),
                    &ppm(plan.read),
                    &ppm(plan.write),
                    &ppm(plan.invalidate),
                ],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn set_goal(&self, goal: &Goal) -> Result<(), PostgresError> {
        let client = self.pool.client().await?;
        client
            .execute(
                "UPDATE zddm_fleet SET goal_phase = $2, goal_ppm = $3 WHERE name = $1",
                &[&self.name, &goal.phase.name(), &ppm(goal.rate)],
            )
            .await?;
        Ok(())
    }

    async fn acknowledge(&self, instance: &str, epoch: u64) -> Result<(), PostgresError> {
        let client = self.pool.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "INSERT INTO zddm_fleet_members VALUES ($1, $2, $3, {NOW}) \
                 ON CONFLICT (name, instance) DO UPDATE SET epoch = excluded.epoch, seen_ms = excluded.seen_ms"
            ))
            .await?;
        client.execute(&statement, &[&self.name, &instance, &to_sql(epoch)]).await?;
        Ok(())
    }

    async fn members(&self) -> Result<(Vec<Member>, u64), PostgresError> {
        let client = self.pool.client().await?;
        let statement = client
            .prepare_cached(&format!(
                "SELECT instance, epoch, seen_ms, {NOW} FROM zddm_fleet_members WHERE name = $1 \
                 UNION ALL SELECT NULL, NULL, NULL, {NOW}"
            ))
            .await?;
        let rows = client.query(&statement, &[&self.name]).await?;
        let mut now = 0;
        let mut members = Vec::new();
        for row in rows {
            now = u64::try_from(row.get::<_, i64>(3)).unwrap_or(0);
            if let Some(instance) = row.get::<_, Option<String>>(0) {
                let (epoch, seen): (i64, i64) = (row.get(1), row.get(2));
                members.push(Member {
                    instance,
                    epoch: u64::try_from(epoch).unwrap_or(0),
                    seen_ms: u64::try_from(seen).unwrap_or(0),
                });
            }
        }
        Ok((members, now))
    }

    async fn set_verified(&self, epoch: Option<u64>) -> Result<(), PostgresError> {
        let client = self.pool.client().await?;
        match epoch {
            Some(epoch) => {
                let sql = "INSERT INTO zddm_fleet_verified VALUES ($1, $2) \
                           ON CONFLICT (name) DO UPDATE SET epoch = excluded.epoch";
                client.execute(sql, &[&self.name, &to_sql(epoch)]).await?
            }
            None => client.execute("DELETE FROM zddm_fleet_verified WHERE name = $1", &[&self.name]).await?,
        };
        Ok(())
    }

    async fn leave(&self, instance: &str) -> Result<(), PostgresError> {
        let client = self.pool.client().await?;
        client
            .execute("DELETE FROM zddm_fleet_members WHERE name = $1 AND instance = $2", &[&self.name, &instance])
            .await?;
        Ok(())
    }
}

impl std::fmt::Debug for PostgresControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresControl").field("name", &self.name).finish_non_exhaustive()
    }
}
