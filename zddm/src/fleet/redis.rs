use redis::aio::ConnectionManager;
use redis::Script;

use crate::fleet::{record_from_columns, Control, Goal, Member, Plan, Record};
use crate::store::redis::connect;
use crate::store::RedisError;

/// A fleet's control record in Redis: the hash `<name>:record` (salt, epoch, plan and goal, each a
/// field), and the hash `<name>:members` with one field per instance (its epoch and heartbeat), so
/// acknowledgements never rewrite the record. Creating and advancing the record are Lua scripts
/// (insert-if-absent, compare-and-set on the epoch); heartbeats use the server's clock.
pub struct RedisControl {
    connection: ConnectionManager,
    record: String,
    members: String,
    open: Script,
    advance: Script,
    acknowledge: Script,
    members_script: Script,
}

/// ARGV: the record's fields and values, alternating. Creates the record if absent.
const OPEN: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('HSET', KEYS[1], unpack(ARGV)) end
return 1
";

/// ARGV: epoch, phase, read, write, invalidate. Compare-and-set on the epoch.
const ADVANCE: &str = r"
if redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'epoch', tostring(tonumber(ARGV[1]) + 1), 'phase', ARGV[2], 'read_ppm', ARGV[3],
    'write_ppm', ARGV[4], 'invalidate_ppm', ARGV[5])
return 1
";

/// ARGV: instance, epoch. Stores "epoch:ms" on the server's clock.
const ACKNOWLEDGE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. string.format('%d', now))
return 1
";

/// Returns {now, field, value, field, value, …}.
const MEMBERS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {string.format('%d', now)}
for _, v in ipairs(redis.call('HGETALL', KEYS[1])) do out[#out + 1] = v end
return out
";

impl RedisControl {
    /// Connects to the Redis server at `url`, for the fleet `name` (its keys start with `name:`).
    pub async fn connect(url: &str, name: &str) -> Result<Self, RedisError> {
        Ok(RedisControl {
            connection: connect(url, name).await?,
            record: format!("{name}:record"),
            members: format!("{name}:members"),
            open: Script::new(OPEN),
            advance: Script::new(ADVANCE),
            acknowledge: Script::new(ACKNOWLEDGE),
            members_script: Script::new(MEMBERS),
        })
    }

    async fn read(&self) -> Result<Option<Record>, RedisError> {
        let mut fields: Vec<Option<String>> = redis::cmd("HMGET")
            .arg(&self.record)
            .arg(&[
                "salt",
                "epoch",
                "phase",
                "read_ppm",
                "write_ppm",
                "invalidate_ppm",
                "goal_phase",
                "goal_ppm",
                "verified",
            ])
            .query_async(&mut self.connection.clone())
            .await?;
        let verified = fields.pop().flatten();
        let Some(fields) = fields.into_iter().collect::<Option<Vec<String>>>() else { return Ok(None) };
        let number = |text: &str| text.parse::<i64>().map_err(|_| RedisError::Field { found: text.to_owned() });
        let epoch = u64::try_from(number(&fields[1])?).map_err(|_| RedisError::Field { found: fields[1].clone() })?;
        let rates = [number(&fields[3])?, number(&fields[4])?, number(&fields[5])?];
        let verified = verified.as_deref().map(number).transpose()?;
        record_from_columns(fields[0].clone(), epoch, &fields[2], rates, &fields[6], number(&fields[7])?, verified)
            .map(Some)
            .map_err(|found| RedisError::Field { found })
    }
}

impl Control for RedisControl {
    type Error = RedisError;

    async fn open(&self, initial: &Record) -> Result<Record, RedisError> {
        let plan = &initial.plan;
        let fields = [
            ("salt", initial.salt.clone()),
            ("epoch", initial.epoch.to_string()),
            ("phase", plan.phase.name().to_owned()),
            ("read_ppm", plan.read.ppm().to_string()),
            ("write_ppm", plan.write.ppm().to_string()),
            ("invalidate_ppm", plan.invalidate.ppm().to_string()),
            ("goal_phase", initial.goal.phase.name().to_owned()),
            ("goal_ppm", initial.goal.rate.ppm().to_string()),
        ];
        let mut invocation = self.open.key(&self.record);
        for (field, value) in &fields {
            invocation.arg(*field).arg(value);
        }
        let _: i64 = invocation.invoke_async(&mut self.connection.clone()).await?;
        self.read().await?.ok_or_else(|| RedisError::Field { found: "no record after creating it".into() })
    }

    async fn load(&self) -> Result<Record, RedisError> {
        self.read().await?.ok_or_else(|| RedisError::Field { found: format!("no record at {}", self.record) })
    }

    async fn advance(&self, epoch: u64, plan: &Plan) -> Result<bool, RedisError> {
        let changed: i64 = self
            .advance
            .key(&self.record)
            .arg(epoch.to_string())
            .arg(plan.phase.name())
            .arg(plan.read.ppm())
            .arg(plan.write.ppm())
            .arg(plan.invalidate.ppm())
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(changed == 1)
    }

    async fn set_verified(&self, epoch: Option<u64>) -> Result<(), RedisError> {
        let command = match epoch {
            Some(epoch) => redis::cmd("HSET").arg(&self.record).arg("verified").arg(epoch.to_string()).clone(),
            None => redis::cmd("HDEL").arg(&self.record).arg("verified").clone(),
        };
        command.query_async::<()>(&mut self.connection.clone()).await?;
        Ok(())
    }

    async fn set_goal(&self, goal: &Goal) -> Result<(), RedisError> {
        redis::cmd("HSET")
            .arg(&self.record)
            .arg("goal_phase")
            .arg(goal.phase.name())
            .arg("goal_ppm")
            .arg(goal.rate.ppm())
            .query_async::<()>(&mut self.connection.clone())
            .await?;
        Ok(())
    }

    async fn acknowledge(&self, instance: &str, epoch: u64) -> Result<(), RedisError> {
        let _: i64 = self
            .acknowledge
            .key(&self.members)
            .arg(instance)
            .arg(epoch)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(())
    }

    async fn members(&self) -> Result<(Vec<Member>, u64), RedisError> {
        let flat: Vec<String> =
            self.members_script.key(&self.members).invoke_async(&mut self.connection.clone()).await?;
        let field = |text: &str| text.parse::<u64>().map_err(|_| RedisError::Field { found: text.to_owned() });
        let now = field(flat.first().map_or("", String::as_str))?;
        let mut members = Vec::new();
        for pair in flat[1..].chunks(2) {
            let [instance, value] = pair else { break };
            let (epoch, seen) = value.split_once(':').ok_or_else(|| RedisError::Field { found: value.clone() })?;
            members.push(Member { instance: instance.clone(), epoch: field(epoch)?, seen_ms: field(seen)? });
        }
        Ok((members, now))
    }

    async fn leave(&self, instance: &str) -> Result<(), RedisError> {
        redis::cmd("HDEL").arg(&self.members).arg(instance).query_async::<()>(&mut self.connection.clone()).await?;
        Ok(())
    }
}

impl std::fmt::Debug for RedisControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisControl").field("record", &self.record).finish_non_exhaustive()
    }
}
