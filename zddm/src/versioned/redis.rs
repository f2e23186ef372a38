use std::fmt;
use std::marker::PhantomData;

use redis::aio::ConnectionManager;
use redis::Script;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::key::MigrationKey;
use crate::store::json::{decode, encode};
use crate::store::redis::{connect, keys_under, pending_under, scan_step};
use crate::store::RedisError;
use crate::versioned::{Change, Filled, Lookup, Page, Scan, ScanSlots, Slot, Source, Target, Versioned};

/// A versioned OLD on Redis: one hash per key, `prefix:` ‖ canonical key bytes, with the value
/// (`v`, JSON) and its version (`ver`). A write's version is the larger of the key's last version
/// plus one and the server's clock in microseconds; each write is one script on one key, so
/// versions follow Redis's own order. A delete keeps the key's version (the hash without `v`) for an
/// hour, so that a write right after it is still versioned above it; after that the clock is.
pub struct RedisSource<K: ?Sized, V> {
    connection: ConnectionManager,
    prefix: Vec<u8>,
    scripts: SourceScripts,
    types: PhantomData<fn(&K) -> V>,
}

/// A versioned NEW on Redis: one hash per key, `prefix:` ‖ canonical key bytes, holding the whole
/// [`Slot`] — value (`v`, absent without one), deleted (`d`), version (`ver`), pending count (`p`),
/// its deadline (`pu`) and the time of the last change (`at`). Every operation is one Lua script that
/// touches that one key, so each is atomic and the layout works on Redis Cluster unchanged.
/// Versions are compared as fixed-width decimal strings (20 digits), never as Lua's doubles.
///
/// Listing pending keys and purging tombstones walk the prefix with `SCAN`: they are for a
/// verifier or a maintenance job, not for the request path.
pub struct RedisTarget<K: ?Sized, V> {
    connection: ConnectionManager,
    prefix: Vec<u8>,
    scripts: TargetScripts,
    types: PhantomData<fn(&K) -> V>,
}

/// The server's clock in ms and µs, and versions as 20-digit strings.
const PRELUDE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_us = string.format('%d', t[1]) .. string.format('%06d', t[2])
local function pad(s) return string.rep('0', 20 - #s) .. s end
local function inc(s)
    local digits, i = {}, #s
    for c in s:gmatch('%d') do digits[#digits + 1] = c end
    while i > 0 do
        if digits[i] == '9' then digits[i] = '0'; i = i - 1
        else digits[i] = tostring(tonumber(digits[i]) + 1); break end
    end
    return table.concat(digits)
end
local function num(field) return tonumber(redis.call('HGET', KEYS[1], field) or '0') end
local function fmt(n) return string.format('%d', n) end
";

/// The next version of KEYS[1]: above its last one and the clock.
const SOURCE_NEXT: &str = r"
local ver = inc(redis.call('HGET', KEYS[1], 'ver') or pad('0'))
local clock = pad(now_us)
if clock > ver then ver = clock end
";

/// ARGV: value. Returns the new version.
const SOURCE_PUT: &str = r"
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'ver', ver)
redis.call('PERSIST', KEYS[1])
return ver
";

/// Returns the delete's version; the key keeps it, without a value, for an hour.
const SOURCE_DELETE: &str = r"
redis.call('HDEL', KEYS[1], 'v')
redis.call('HSET', KEYS[1], 'ver', ver)
redis.call('PEXPIRE', KEYS[1], 3600000)
return ver
";

/// Returns a version for a write that bypasses OLD's data, and keeps it as the key's last one.
const SOURCE_NEXT_VERSION: &str = r"
redis.call('HSET', KEYS[1], 'ver', ver)
if redis.call('HEXISTS', KEYS[1], 'v') == 0 then redis.call('PEXPIRE', KEYS[1], 3600000) end
return ver
";

/// Returns {value or false, deleted, ver, p, pu, now}.
const TARGET_LOOKUP: &str = r"
local s = redis.call('HMGET', KEYS[1], 'v', 'd', 'ver', 'p', 'pu')
return {s[1], s[2] or '0', s[3] or pad('0'), s[4] or '0', s[5] or '0', fmt(now)}
";

/// ARGV: grace in ms. `Slot::mark`.
const TARGET_MARK: &str = r"
local until_ = now + tonumber(ARGV[1])
local pu = num('pu')
if pu > until_ then until_ = pu end
redis.call('HSET', KEYS[1], 'p', fmt(num('p') + 1), 'pu', fmt(until_))
if redis.call('HEXISTS', KEYS[1], 'ver') == 0 then redis.call('HSET', KEYS[1], 'ver', pad('0'), 'at', fmt(now)) end
return 1
";

/// ARGV: value, change ('p' put, 'd' delete, 'i' invalidate), version (20 digits), settle
/// ('1'/'0'). `Slot::apply`.
const TARGET_APPLY: &str = r"
local ver = redis.call('HGET', KEYS[1], 'ver') or pad('0')
local newer = ARGV[3] > ver
if newer then
    if ARGV[2] == 'p' then redis.call('HSET', KEYS[1], 'v', ARGV[1]) else redis.call('HDEL', KEYS[1], 'v') end
    local d = '0'
    if ARGV[2] == 'd' then d = '1' end
    redis.call('HSET', KEYS[1], 'd', d, 'ver', ARGV[3], 'at', fmt(now))
end
if ARGV[4] == '1' then
    local p = num('p')
    if p > 0 then p = p - 1 end
    if p == 0 then redis.call('HSET', KEYS[1], 'p', '0', 'pu', '0') else redis.call('HSET', KEYS[1], 'p', fmt(p)) end
end
if redis.call('HEXISTS', KEYS[1], 'p') == 0 then redis.call('HSET', KEYS[1], 'p', '0', 'pu', '0') end
if newer then return 1 end
return 0
";

/// ARGV: value, has value, version (20 digits), token ('' for none). `Slot::fill`: 0 refused,
/// 1 copied, 2 repaired.
const TARGET_FILL: &str = r"
local ver = redis.call('HGET', KEYS[1], 'ver') or pad('0')
if num('p') > 0 then
    local pu = redis.call('HGET', KEYS[1], 'pu') or '0'
    if ARGV[4] == '' or ARGV[4] ~= pu or now < tonumber(pu) then return 0 end
    local d = '1'
    if ARGV[2] == '1' then redis.call('HSET', KEYS[1], 'v', ARGV[1]); d = '0' else redis.call('HDEL', KEYS[1], 'v') end
    if ARGV[3] > ver then ver = ARGV[3] end
    redis.call('HSET', KEYS[1], 'd', d, 'ver', ver, 'p', '0', 'pu', '0', 'at', fmt(now))
    return 2
end
local holds = redis.call('HEXISTS', KEYS[1], 'v') == 1 or redis.call('HGET', KEYS[1], 'd') == '1'
if ARGV[2] == '1' and (ARGV[3] > ver or (not holds and ARGV[3] == ver and ARGV[3] > pad('0'))) then
    redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', '0', 'ver', ARGV[3], 'p', '0', 'pu', '0', 'at', fmt(now))
    return 1
end
return 0
";

/// ARGV: age in ms. `Slot::purgeable`: deletes the key if it is a settled tombstone that old.
const TARGET_PURGE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 or redis.call('HEXISTS', KEYS[1], 'v') == 1 or num('p') > 0 then return 0 end
if now - num('at') < tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
return 1
";

struct SourceScripts {
    put: Script,
    delete: Script,
    next_version: Script,
}

struct TargetScripts {
    lookup: Script,
    mark: Script,
    apply: Script,
    fill: Script,
    purge: Script,
}

fn script(body: &str) -> Script {
    Script::new(&[PRELUDE, body].concat())
}

fn version_arg(version: u64) -> String {
    format!("{version:020}")
}

fn parse(text: &str) -> Result<u64, RedisError> {
    text.parse().map_err(|_| RedisError::Field { found: text.to_owned() })
}

fn entry(prefix: &[u8], key: &[u8]) -> Vec<u8> {
    [prefix, key].concat()
}

impl<K: ?Sized, V> RedisSource<K, V> {
    /// Connects to the Redis server at `url`; the store's keys start with `prefix:`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, RedisError> {
        Ok(RedisSource {
            connection: connect(url, prefix).await?,
            prefix: format!("{prefix}:").into_bytes(),
            scripts: SourceScripts {
                put: Script::new(&[PRELUDE, SOURCE_NEXT, SOURCE_PUT].concat()),
                delete: Script::new(&[PRELUDE, SOURCE_NEXT, SOURCE_DELETE].concat()),
                next_version: Script::new(&[PRELUDE, SOURCE_NEXT, SOURCE_NEXT_VERSION].concat()),
            },
            types: PhantomData,
        })
    }
}

impl<K: ?Sized, V> RedisTarget<K, V> {
    /// Connects to the Redis server at `url`; the store's keys start with `prefix:`.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, RedisError> {
        Ok(RedisTarget {
            connection: connect(url, prefix).await?,
            prefix: format!("{prefix}:").into_bytes(),
            scripts: TargetScripts {
                lookup: script(TARGET_LOOKUP),
                mark: script(TARGET_MARK),
                apply: script(TARGET_APPLY),
                fill: script(TARGET_FILL),
                purge: script(TARGET_PURGE),
            },
            types: PhantomData,
        })
    }
}

impl<K, V> Source<K, V> for RedisSource<K, V>
where
    K: MigrationKey + ?Sized + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    type Error = RedisError;

    fn timeout(&self) -> Option<std::time::Duration> {
        Some(crate::store::redis::TIMEOUT)
    }

    async fn get(&self, key: &K) -> Result<Option<Versioned<V>>, RedisError> {
        let key = key.try_key_bytes()?;
        let (text, version): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(entry(&self.prefix, &key))
            .arg("v")
            .arg("ver")
            .query_async(&mut self.connection.clone())
            .await?;
        match (text, version) {
            (Some(text), Some(version)) => {
                Ok(Some(Versioned { value: decode(&key, &text)?, version: parse(&version)? }))
            }
            _ => Ok(None),
        }
    }

    async fn put(&self, key: &K, value: &V) -> Result<u64, RedisError> {
        let (key, value) = (key.try_key_bytes()?, encode(value)?);
        let version: String = self
            .scripts
            .put
            .key(entry(&self.prefix, &key))
            .arg(value)
            .invoke_async(&mut self.connection.clone())
            .await?;
        parse(&version)
    }

    async fn delete(&self, key: &K) -> Result<u64, RedisError> {
        let key = key.try_key_bytes()?;
        let version: String =
            self.scripts.delete.key(entry(&self.prefix, &key)).invoke_async(&mut self.connection.clone()).await?;
        parse(&version)
    }

    async fn next_version(&self, key: &K) -> Result<u64, RedisError> {
        let key = key.try_key_bytes()?;
        let version: String =
            self.scripts.next_version.key(entry(&self.prefix, &key)).invoke_async(&mut self.connection.clone()).await?;
        parse(&version)
    }
}

/// What the lookup script returns: value, deleted, version, pending, pending until, now.
type Fields = (Option<String>, String, String, String, String, String);

/// A value as the scripts take it: the JSON text (empty for none) and whether there is one.
fn value_args<V: Serialize>(value: Option<&V>) -> Result<(String, &'static str), RedisError> {
    Ok(match value {
        Some(value) => (encode(value)?, "1"),
        None => (String::new(), "0"),
    })
}

impl<K, V> Target<K, V> for RedisTarget<K, V>
where
    K: MigrationKey + ?Sized + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    type Error = RedisError;

    fn timeout(&self) -> Option<std::time::Duration> {
        Some(crate::store::redis::TIMEOUT)
    }

    async fn lookup(&self, key: &K) -> Result<Lookup<V>, RedisError> {
        let key = key.try_key_bytes()?;
        let (text, deleted, version, pending, pending_until, now): Fields =
            self.scripts.lookup.key(entry(&self.prefix, &key)).invoke_async(&mut self.connection.clone()).await?;
        let slot = Slot {
            value: text,
            deleted: deleted == "1",
            version: parse(&version)?,
            pending: u32::try_from(parse(&pending)?).unwrap_or(u32::MAX),
            pending_until: parse(&pending_until)?,
            changed_at: 0,
        };
        Ok(match slot.lookup(parse(&now)?) {
            Lookup::Hit(text) => Lookup::Hit(decode(&key, &text)?),
            Lookup::Deleted => Lookup::Deleted,
            Lookup::Miss => Lookup::Miss,
            Lookup::Pending { token, expired } => Lookup::Pending { token, expired },
        })
    }

    async fn mark(&self, key: &K, grace_ms: u64) -> Result<(), RedisError> {
        let key = key.try_key_bytes()?;
        let _: i64 = self
            .scripts
            .mark
            .key(entry(&self.prefix, &key))
            .arg(grace_ms)
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(())
    }

    async fn apply(&self, key: &K, change: Change<&V>, version: u64, settle: bool) -> Result<(), RedisError> {
        let key = key.try_key_bytes()?;
        let (text, has) = match change {
            Change::Put(value) => (encode(value)?, "p"),
            Change::Delete => (String::new(), "d"),
            Change::Invalidate => (String::new(), "i"),
        };
        self.scripts
            .apply
            .key(entry(&self.prefix, &key))
            .arg(text)
            .arg(has)
            .arg(version_arg(version))
            .arg(if settle { "1" } else { "0" })
            .invoke_async::<()>(&mut self.connection.clone())
            .await?;
        Ok(())
    }

    async fn fill(&self, key: &K, value: Option<&V>, version: u64, token: Option<u64>) -> Result<Filled, RedisError> {
        let key = key.try_key_bytes()?;
        let (text, has) = value_args(value)?;
        let filled: i64 = self
            .scripts
            .fill
            .key(entry(&self.prefix, &key))
            .arg(text)
            .arg(has)
            .arg(version_arg(version))
            .arg(token.map(|token| token.to_string()).unwrap_or_default())
            .invoke_async(&mut self.connection.clone())
            .await?;
        Ok(match filled {
            1 => Filled::Copied,
            2 => Filled::Repaired,
            _ => Filled::Refused,
        })
    }

    async fn pending_keys(&self, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, RedisError> {
        pending_under(&self.connection, &self.prefix, after, limit).await
    }

    async fn purge(&self, older_than_ms: u64) -> Result<usize, RedisError> {
        let mut purged = 0;
        let mut connection = self.connection.clone();
        for key in keys_under(&self.connection, &self.prefix).await? {
            let gone: i64 = self
                .scripts
                .purge
                .key(entry(&self.prefix, &key))
                .arg(older_than_ms)
                .invoke_async(&mut connection)
                .await?;
            purged += usize::try_from(gone).unwrap_or(0);
        }
        Ok(purged)
    }
}

/// The `SCAN` cursor as a position, in decimal.
fn cursor(after: Option<&[u8]>) -> Result<u64, RedisError> {
    after.map_or(Ok(0), |after| {
        std::str::from_utf8(after).ok().and_then(|text| text.parse().ok()).ok_or_else(|| RedisError::Field {
            found: format!("a scan position {after:02x?} this store did not give out"),
        })
    })
}

fn position(next: Option<u64>) -> Option<Vec<u8>> {
    next.map(|next| next.to_string().into_bytes())
}

/// In Redis's hash order (`SCAN` over the prefix: no canonical key order, so verification looks keys
/// up); a position is the `SCAN` cursor, which survives restarts. A key may come twice, and a page
/// may hold more or fewer entries than asked.
impl<K, V> Scan<K, V> for RedisSource<K, V>
where
    K: MigrationKey + Send + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    async fn scan(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, Versioned<V>>, RedisError> {
        let (keys, next) = scan_step(&self.connection, &self.prefix, cursor(after)?, limit).await?;
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("HMGET").arg(entry(&self.prefix, key)).arg("v").arg("ver");
        }
        let fields: Vec<(Option<String>, Option<String>)> =
            if keys.is_empty() { Vec::new() } else { pipe.query_async(&mut self.connection.clone()).await? };
        let mut entries = Vec::with_capacity(keys.len());
        for (key, fields) in keys.iter().zip(fields) {
            // A deleted key keeps its version for a while, without a value: nothing to copy.
            if let (Some(text), Some(version)) = fields {
                entries.push((
                    K::from_key_bytes(key)?,
                    Versioned { value: decode(key, &text)?, version: parse(&version)? },
                ));
            }
        }
        Ok(Page { entries, next: position(next) })
    }

    fn canonical(&self) -> bool {
        false
    }
}

/// In Redis's hash order, as [`RedisSource`]'s scan: each key's slot read with the lookup script.
impl<K, V> ScanSlots<K, V> for RedisTarget<K, V>
where
    K: MigrationKey + Send + Sync,
    V: Serialize + DeserializeOwned + Send + Sync,
{
    async fn scan_slots(&self, after: Option<&[u8]>, limit: usize) -> Result<Page<K, Lookup<V>>, RedisError> {
        let (keys, next) = scan_step(&self.connection, &self.prefix, cursor(after)?, limit).await?;
        let mut entries = Vec::with_capacity(keys.len());
        for key in keys {
            let key = K::from_key_bytes(&key)?;
            let found = self.lookup(&key).await?;
            entries.push((key, found));
        }
        Ok(Page { entries, next: position(next) })
    }

    fn canonical(&self) -> bool {
        false
    }
}

impl<K: ?Sized, V> fmt::Debug for RedisSource<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSource").field("prefix", &String::from_utf8_lossy(&self.prefix)).finish_non_exhaustive()
    }
}

impl<K: ?Sized, V> fmt::Debug for RedisTarget<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTarget").field("prefix", &String::from_utf8_lossy(&self.prefix)).finish_non_exhaustive()
    }
}
