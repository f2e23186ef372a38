use std::fmt;
use std::marker::PhantomData;

use redis::aio::ConnectionManager;
use redis::Script;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cached::{Cache, Probe};
use crate::key::MigrationKey;
use crate::store::json::{decode, encode};
use crate::store::redis::{connect, pending_under};
use crate::store::RedisError;

/// An unversioned NEW on Redis: one hash per key, `prefix:` ‖ canonical key bytes, holding the
/// whole [`Entry`](crate::cached::Entry) — value (`v`), absent (`a`), pending count (`p`), its
/// deadline (`pu`), the current lease (`l`) and the leases issued (`ls`). Every operation is one
/// Lua script on that one key, on the server's clock, so each is atomic and the layout works on
/// Redis Cluster unchanged. Listing pending keys walks the prefix with `SCAN`.
pub struct RedisCache<K: ?Sized, V> {
    connection: ConnectionManager,
    prefix: Vec<u8>,
    probe: Script,
    mark: Script,
    invalidate: Script,
    fill: Script,
    types: PhantomData<fn(&K) -> V>,
}

const PRELUDE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function num(field) return tonumber(redis.call('HGET', KEYS[1], field) or '0') end
local function fmt(n) return string.format('%d', n) end
";

/// Returns {kind, value-or-false, token}: 0 hit, 1 absent, 2 leased, 3 busy. `Entry::probe`.
const PROBE: &str = r"
local p = num('p')
if p > 0 and now < num('pu') then return {3, false, '0'} end
if p == 0 then
    local v = redis.call('HGET', KEYS[1], 'v')
    if v then return {0, v, '0'} end
    if redis.call('HGET', KEYS[1], 'a') == '1' then return {1, false, '0'} end
end
local token = fmt(num('ls') + 1)
redis.call('HSET', KEYS[1], 'ls', token, 'l', token)
return {2, false, token}
";

/// ARGV: grace in ms. `Entry::mark`.
const MARK: &str = r"
local until_ = now + tonumber(ARGV[1])
if num('pu') > until_ then until_ = num('pu') end
redis.call('HSET', KEYS[1], 'p', fmt(num('p') + 1), 'pu', fmt(until_), 'l', '0')
return 1
";

/// ARGV: settle ('1'/'0'). `Entry::invalidate`.
const INVALIDATE: &str = r"
redis.call('HDEL', KEYS[1], 'v')
redis.call('HSET', KEYS[1], 'a', '0', 'l', '0')
if ARGV[1] == '1' then
    local p = num('p') - 1
    if p <= 0 then redis.call('HSET', KEYS[1], 'p', '0', 'pu', '0') else redis.call('HSET', KEYS[1], 'p', fmt(p)) end
end
return 1
";

/// ARGV: value, has value ('1'/'0'), token. `Entry::fill`.
const FILL: &str = r"
if ARGV[3] == '0' or (redis.call('HGET', KEYS[1], 'l') or '0') ~= ARGV[3] then return 0 end
if ARGV[2] == '1' then
    redis.call('HSET', KEYS[1], 'v', ARGV[1], 'a', '0')
else
    redis.call('HDEL', KEYS[1], 'v')
    redis.call('HSET', KEYS[1], 'a', '1')
end
redis.call('HSET', KEYS[1], 'l', '0', 'p', '0', 'pu', '0')
return 1
";

fn script(body: &str) -> Script {
    Script::new(&[PRELUDE, body].concat())
}

impl<K: ?Sized, V> RedisCache<K, V> {
    /// Connects to the Redis server at `url`; the cache's keys start with `prefix:`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, RedisError> {
        Ok(RedisCache {
            connection: connect(url, prefix).await?,
            prefix: format!("{prefix}:").into_bytes(),
            probe: script(PROBE),
            mark: script(MARK),
            invalidate: script(INVALIDATE),
            fill: script(FILL),
            types: PhantomData,
        })
    }

    fn entry(&self, key: &[u8]) -> Vec<u8> {
        [&self.prefix[..], key].concat()
    }
}

impl<K, V> Cache<K, V> for RedisCache<K, V>
where
    K: MigrationKey + ?Sized + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    type Error = RedisError;

    fn timeout(&self) -> Option<std::time::Duration> {
        Some(crate::store::redis::TIMEOUT)
    }

    async fn probe(&self, key: &K) -> Result<Probe<V>, RedisError> {
        let key = key.try_key_bytes()?;
        let (kind, value, token): (i64, Option<String>, String) =
            self.probe.key(self.entry(&key)).invoke_async(&mut self.connection.clone()).await?;
        let token = token.parse::<u64>().map_err(|_| RedisError::Field { found: token.clone() })?;
        Ok(match (kind, value) {
            (0, Some(text)) => Probe::Hit(decode(&key, &text)?),
            (1, _) => Probe::Absent,
            (2, _) => Probe::Leased(token),
            _ => Probe::Busy,
        })
    }

    async fn mark(&self, key: &K, grace_ms: u64) -> Result<(), RedisError> {
        let key = key.try_key_bytes()?;
        let _: i64 = self.mark.key(self.entry(&key)).arg(grace_ms).invoke_async(&mut self.connection.clone()).await?;
        Ok(())
    }

    async fn invalidate(&self, key: &K, settle: bool) -> Result<(), RedisError> {
        let key = key.try_key_bytes()?;
        let _: i64 = self
            .invalidate
            .key(self.entry(&key))
            .arg(if settle { "1" } else { "0" })
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(())
    }

    async fn fill(&self, key: &K, value: Option<&V>, token: u64) -> Result<bool, RedisError> {
        let key = key.try_key_bytes()?;
        let (text, has) = match value {
            Some(value) => (encode(value)?, "1"),
            None => (String::new(), "0"),
        };
        let landed: i64 = self
            .fill
            .key(self.entry(&key))
            .arg(text)
            .arg(has)
            .arg(token.to_string())
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(landed == 1)
    }

    async fn pending_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, RedisError> {
        pending_under(&self.connection, &self.prefix, after, limit).await
    }
}

impl<K: ?Sized, V> fmt::Debug for RedisCache<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCache").field("prefix", &String::from_utf8_lossy(&self.prefix)).finish_non_exhaustive()
    }
}
