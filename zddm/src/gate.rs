//! The per-key gate: which keys take part in the migration.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sha2::digest::generic_array::GenericArray;

use crate::key::{KeyError, KeySink, MigrationKey};
use crate::rate::{Rate, RateError};

/// Decides, per key, whether the key takes part in the migration.
///
/// The decision is a pure function of (salt, key, rate): every process of a fleet, in any language
/// that implements `docs/key-encoding.md`, decides the same. A key's bucket is the first 8 bytes of
/// SHA-256 over a salted prefix and the key's canonical encoding; it is admitted iff the bucket is
/// below the rate's threshold, so raising the rate only ever adds keys.
///
/// Clones share one rate: [`set_rate`](Gate::set_rate) is atomic and every clone sees it at once.
/// The gate also keeps the **high-water mark**, the largest rate ever applied: keys below it may
/// have a copy in NEW even when the current rate no longer admits them (see [`Admission`]).
///
/// Lowering the rate takes keys off NEW in every phase before `Complete`: they are served by OLD,
/// which those phases still write first, so nothing only NEW holds is lost. A gate whose proxy has
/// completed its migration stays at 100 %, and the gate of a proxy in a fleet follows the fleet's
/// plan: [`set_rate`](Gate::set_rate) refuses a change there rather than apply one nobody follows.
///
/// ```
/// use zddm::{Admission, Gate, MigrationKey, Rate};
///
/// #[derive(MigrationKey)]
/// struct UserId(u64);
///
/// let gate = Gate::new("users-to-postgres", Rate::percent(10.0)?);
/// let admitted = (0..10_000).filter(|&id| gate.admits(&UserId(id))).count();
/// assert!((900..1_100).contains(&admitted));
///
/// gate.set_rate(Rate::ALL)?;
/// assert!(gate.admits(&UserId(1)));
/// gate.set_rate(Rate::NONE)?;
/// assert_eq!(gate.admission(&UserId(1)), Admission::Lapsed);
/// assert_eq!(gate.high_water_mark(), Rate::ALL);
/// # Ok::<(), zddm::RateError>(())
/// ```
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Inner>,
}

struct Inner {
    salt: Box<str>,
    /// SHA-256 state after the padded prefix, or why the salt cannot be encoded.
    midstate: Result<[u32; 8], KeyError>,
    prefix_len: u64,
    /// `high_water_ppm << 32 | flags | rate_ppm`: one atomic word, so the rate, the high-water mark
    /// and whether the rate is fixed ([`FIXED_COMPLETE`], [`FIXED_FLEET`]) always change together.
    rates: AtomicU64,
}

/// Where a key stands with respect to a gate: what the proxy must do with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Admission {
    /// The current rate admits the key: it takes part in the migration.
    Admitted,
    /// The current rate does not admit the key, but the high-water mark did: NEW may hold a copy,
    /// so a write must invalidate it to keep NEW from going stale.
    Lapsed,
    /// No rate ever applied admitted the key: it was never in NEW and costs nothing.
    Never,
}

const DOMAIN: &str = "zddm/v1";
/// A ppm takes 20 bits (1_000_000 < 2^20); the flags sit above the rate's.
const PPM_BITS: u64 = 0xF_FFFF;
/// The gate's proxy completed its migration: the rate stays at 100 %.
const FIXED_COMPLETE: u64 = 1 << 31;
/// The gate belongs to a fleet's proxies, which follow the fleet's plan, not its rate.
const FIXED_FLEET: u64 = 1 << 30;
const FLAGS: u64 = FIXED_COMPLETE | FIXED_FLEET;
const BLOCK: usize = 64;
const SHA256_IV: [u32; 8] =
    [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

impl Gate {
    /// A gate for the migration named by `salt`, admitting `rate` of the keys.
    ///
    /// Use a different salt per migration so that the first 1 % of one migration is not the first
    /// 1 % of every other. The salted prefix is hashed here, once.
    pub fn new(salt: &str, rate: Rate) -> Gate {
        let (midstate, prefix_len) = match prefix(salt) {
            Ok(prefix) => {
                let mut state = SHA256_IV;
                compress(&mut state, &prefix);
                (Ok(state), prefix.len() as u64)
            }
            Err(err) => (Err(err), 0),
        };
        Gate {
            inner: Arc::new(Inner { salt: salt.into(), midstate, prefix_len, rates: AtomicU64::new(pack(rate, rate)) }),
        }
    }

    /// The salt this gate was made with.
    pub fn salt(&self) -> &str {
        &self.inner.salt
    }

    /// The current rate.
    pub fn rate(&self) -> Rate {
        unpack(self.inner.rates.load(Ordering::Acquire)).0
    }

    /// The rate and the high-water mark, read together.
    pub(crate) fn rates(&self) -> (Rate, Rate) {
        unpack(self.inner.rates.load(Ordering::Acquire))
    }

    /// Whether `rate` admits the key, hashing it only if the rate is neither none nor all; a key
    /// (or salt) that cannot be encoded is never admitted. `bucket` caches the hash across calls.
    pub(crate) fn admits_at<K: MigrationKey + ?Sized>(
        &self,
        key: &K,
        rate: Rate,
        bucket: &std::cell::Cell<Option<Option<u64>>>,
    ) -> bool {
        if rate == Rate::NONE {
            return false;
        }
        let hashed = match bucket.get() {
            Some(hashed) => hashed,
            None if rate == Rate::ALL => {
                return self.inner.midstate.is_ok() && encodable(key);
            }
            None => {
                let hashed = self.try_bucket(key).ok();
                bucket.set(Some(hashed));
                hashed
            }
        };
        hashed.is_some_and(|bucket| rate.admits_bucket(bucket))
    }

    /// The largest rate this gate has ever applied. It never decreases.
    pub fn high_water_mark(&self) -> Rate {
        unpack(self.inner.rates.load(Ordering::Acquire)).1
    }

    /// Applies `rate` to this gate and every clone of it, at once; raises the high-water mark if
    /// `rate` is above it. Returns the previous rate.
    ///
    /// Lowering is safe in every phase before `Complete` (keys that leave the gate are served by
    /// OLD, which those phases write first). Refused, with the gate unchanged, where the rate would
    /// be ignored: [`RateError::GateComplete`] for anything but 100 % once a proxy over this gate
    /// has entered `Complete` (OLD is no longer written, so every key stays on NEW), and
    /// [`RateError::GateInFleet`] for the gate of a proxy in a fleet (its plan sets the rates: use
    /// `Fleet::set_goal`).
    pub fn set_rate(&self, rate: Rate) -> Result<Rate, RateError> {
        let swapped = self.inner.rates.fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
            let (current, high) = unpack(word);
            let fixed = word & FIXED_FLEET != 0 || (word & FIXED_COMPLETE != 0 && rate != current);
            (!fixed).then_some(pack(rate, high.max(rate)) | (word & FLAGS))
        });
        match swapped {
            Ok(previous) => Ok(unpack(previous).0),
            Err(word) if word & FIXED_FLEET != 0 => Err(RateError::GateInFleet { rate }),
            Err(_) => Err(RateError::GateComplete { rate }),
        }
    }

    /// Fixes the rate at 100 % for good, as a proxy enters `Complete`; the rate found if it is
    /// not 100 % (then nothing changes).
    pub(crate) fn fix_for_complete(&self) -> Result<(), Rate> {
        self.inner
            .rates
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                (unpack(word).0 == Rate::ALL).then_some(word | FIXED_COMPLETE)
            })
            .map(drop)
            .map_err(|word| unpack(word).0)
    }

    /// Marks the gate as a fleet's: its rates are the plan's, so `set_rate` is refused.
    pub(crate) fn fix_for_fleet(&self) {
        self.inner.rates.fetch_or(FIXED_FLEET, Ordering::AcqRel);
    }

    /// The key's bucket: the first 8 bytes, big-endian, of SHA-256(prefix ‖ key bytes).
    ///
    /// A key or salt that cannot be encoded (a length over `u32::MAX`) has no bucket; this returns
    /// `u64::MAX` for it, and [`admits`](Gate::admits) never admits it. Use
    /// [`try_bucket`](Gate::try_bucket) to tell such a key apart.
    #[inline]
    pub fn bucket<K: MigrationKey + ?Sized>(&self, key: &K) -> u64 {
        self.try_bucket(key).unwrap_or(u64::MAX)
    }

    /// The key's bucket, or why the key (or the gate's salt) cannot be encoded.
    #[inline]
    pub fn try_bucket<K: MigrationKey + ?Sized>(&self, key: &K) -> Result<u64, KeyError> {
        let state = self.inner.midstate.clone()?;
        let mut hasher = Hasher { state, buf: [0; BLOCK], used: 0, total: self.inner.prefix_len, error: None };
        key.encode_key(&mut hasher);
        hasher.finish()
    }

    /// Whether the current rate admits the key. Allocation-free.
    #[inline]
    pub fn admits<K: MigrationKey + ?Sized>(&self, key: &K) -> bool {
        self.admission(key) == Admission::Admitted
    }

    /// Where the key stands: admitted now, admitted at the high-water mark only, or never.
    /// Reads the rate and the high-water mark together, so the answer is consistent. Before any
    /// ramp (high-water mark 0 %) and at 100 % the answer needs no hash, and none is computed.
    #[inline]
    pub fn admission<K: MigrationKey + ?Sized>(&self, key: &K) -> Admission {
        self.decide(key).map_or(Admission::Never, |(admission, _)| admission)
    }

    /// The key's admission and, if deciding it took the hash, its bucket; `None` if the key (or
    /// the salt) cannot be encoded, which is never admitted.
    #[inline]
    pub(crate) fn decide<K: MigrationKey + ?Sized>(&self, key: &K) -> Option<(Admission, Option<u64>)> {
        let (rate, high) = unpack(self.inner.rates.load(Ordering::Acquire));
        // The two ends of a migration need no hash: before any ramp no bucket was ever admitted,
        // and at 100 % every bucket is. Only the key's encodability still counts there.
        if high == Rate::NONE || rate == Rate::ALL {
            let admission = if rate == Rate::ALL { Admission::Admitted } else { Admission::Never };
            return (self.inner.midstate.is_ok() && encodable(key)).then_some((admission, None));
        }
        let bucket = self.try_bucket(key).ok()?;
        Some((admission(rate, high, bucket), Some(bucket)))
    }

    /// Where a key with this bucket stands (see [`admission`](Gate::admission)), for callers that
    /// already hashed the key.
    #[inline]
    pub fn admission_for_bucket(&self, bucket: u64) -> Admission {
        let (rate, high) = unpack(self.inner.rates.load(Ordering::Acquire));
        admission(rate, high, bucket)
    }
}

#[inline]
fn admission(rate: Rate, high: Rate, bucket: u64) -> Admission {
    if rate.admits_bucket(bucket) {
        Admission::Admitted
    } else if high.admits_bucket(bucket) {
        Admission::Lapsed
    } else {
        Admission::Never
    }
}

/// Whether the key has an encoding (no length over `u32::MAX`), found without hashing it.
#[inline]
fn encodable<K: MigrationKey + ?Sized>(key: &K) -> bool {
    struct Check(bool);
    impl KeySink for Check {
        #[inline]
        fn write_raw(&mut self, _: &[u8]) {}
        fn reject(&mut self, _: KeyError) {
            self.0 = false;
        }
    }
    let mut check = Check(true);
    key.encode_key(&mut check);
    check.0
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (rate, high) = unpack(self.inner.rates.load(Ordering::Acquire));
        f.debug_struct("Gate")
            .field("salt", &self.inner.salt)
            .field("rate", &rate)
            .field("high_water_mark", &high)
            .finish()
    }
}

fn pack(rate: Rate, high: Rate) -> u64 {
    (u64::from(high.ppm()) << 32) | u64::from(rate.ppm())
}

fn unpack(word: u64) -> (Rate, Rate) {
    // Only `pack` writes the word, from valid rates (and the flags, masked off here).
    let rate = Rate::from_ppm((word & PPM_BITS) as u32).unwrap_or(Rate::NONE);
    let high = Rate::from_ppm(((word >> 32) & PPM_BITS) as u32).unwrap_or(Rate::NONE);
    (rate, high)
}

/// `s("zddm/v1") ‖ s(salt)`, zero-padded to a multiple of 64 bytes.
fn prefix(salt: &str) -> Result<Vec<u8>, KeyError> {
    let mut out = Vec::with_capacity(BLOCK);
    for part in [DOMAIN, salt] {
        let len = u32::try_from(part.len()).map_err(|_| KeyError::TooLong { len: part.len() })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out.resize(out.len().next_multiple_of(BLOCK), 0);
    Ok(out)
}

fn compress(state: &mut [u32; 8], blocks: &[u8]) {
    for block in blocks.chunks_exact(BLOCK) {
        sha2::compress256(state, std::slice::from_ref(GenericArray::from_slice(block)));
    }
}

/// SHA-256 from a midstate, fed by the key encoder through a one-block buffer on the stack.
struct Hasher {
    state: [u32; 8],
    buf: [u8; BLOCK],
    used: usize,
    /// Bytes hashed so far, prefix included.
    total: u64,
    error: Option<KeyError>,
}

impl KeySink for Hasher {
    #[inline]
    fn write_raw(&mut self, mut bytes: &[u8]) {
        self.total = self.total.wrapping_add(bytes.len() as u64);
        loop {
            let room = BLOCK - self.used;
            if bytes.len() < room {
                self.buf[self.used..self.used + bytes.len()].copy_from_slice(bytes);
                self.used += bytes.len();
                return;
            }
            self.buf[self.used..].copy_from_slice(&bytes[..room]);
            compress(&mut self.state, &self.buf);
            self.used = 0;
            bytes = &bytes[room..];
        }
    }

    fn reject(&mut self, error: KeyError) {
        self.error.get_or_insert(error);
    }
}

impl Hasher {
    #[inline]
    fn finish(mut self) -> Result<u64, KeyError> {
        if let Some(err) = self.error {
            return Err(err);
        }
        let bits = self.total.wrapping_mul(8);
        self.buf[self.used] = 0x80;
        self.buf[self.used + 1..].fill(0);
        if self.used >= BLOCK - 8 {
            compress(&mut self.state, &self.buf);
            self.buf.fill(0);
        }
        self.buf[BLOCK - 8..].copy_from_slice(&bits.to_be_bytes());
        compress(&mut self.state, &self.buf);
        Ok((u64::from(self.state[0]) << 32) | u64::from(self.state[1]))
    }
}
