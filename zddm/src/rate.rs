//! The fraction of keys a gate admits.

use std::fmt;
use std::str::FromStr;

/// A fraction of the key space, in parts per million: what share of keys a [`Gate`](crate::Gate)
/// admits into the migration.
///
/// Exact by construction: a rate is an integer number of ppm, so every process of a fleet computes
/// the same admission threshold. The resolution is therefore 1 ppm = 0.0001 %. Input that is out of
/// range, or finer than the resolution (`0.00001%`, `12.34567%`, `1.5ppm`), is an error naming the
/// nearest rates there are — never clamped, never rounded.
///
/// ```
/// use zddm::{Rate, RateError};
///
/// assert_eq!(Rate::percent(12.5)?.ppm(), 125_000);
/// assert_eq!(Rate::from_ppm(1)?.to_string(), "0.0001%");
/// assert!(Rate::from_ppm(1_000_001).is_err());
/// assert_eq!("50%".parse::<Rate>()?, Rate::percent(50.0)?);
/// assert!(matches!("0.00001%".parse::<Rate>(), Err(RateError::BelowResolution { .. })));
/// assert!(matches!(Rate::percent(12.34567), Err(RateError::FinerThanResolution { .. })));
/// # Ok::<(), zddm::RateError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Rate(u32);

const PPM_PER_PERCENT: u32 = 10_000;

/// How far from a whole ppm an `f64` percentage may be and still count as that ppm: far above the
/// error of a double near 10^6 (about 10^-10), far below any step a person would mean.
const FLOAT_TOLERANCE_PPM: f64 = 1e-6;

impl Rate {
    /// No key is admitted.
    pub const NONE: Rate = Rate(0);
    /// Every key is admitted.
    pub const ALL: Rate = Rate(Self::MAX_PPM);
    /// One million parts per million.
    pub const MAX_PPM: u32 = 1_000_000;

    /// A rate of `ppm` parts per million, 0 to 1,000,000.
    pub const fn from_ppm(ppm: u32) -> Result<Rate, RateError> {
        if ppm > Self::MAX_PPM {
            return Err(RateError::PpmOutOfRange { ppm });
        }
        Ok(Rate(ppm))
    }

    /// A rate of `percent` %, 0 to 100, in steps of 0.0001 % (1 ppm).
    ///
    /// A value between two steps is an error ([`RateError::BelowResolution`] under 0.0001 %,
    /// [`RateError::FinerThanResolution`] above), not rounded; only the error of the `f64` itself
    /// (`0.1 + 0.2`) is tolerated, up to a millionth of a ppm. NaN, a negative value or one over
    /// 100 is an error too.
    pub fn percent(percent: f64) -> Result<Rate, RateError> {
        if percent.is_nan() {
            return Err(RateError::PercentNotANumber);
        }
        if percent < 0.0 {
            return Err(RateError::PercentNegative { percent });
        }
        if percent > 100.0 {
            return Err(RateError::PercentAboveHundred { percent });
        }
        let ppm = percent * f64::from(PPM_PER_PERCENT);
        let nearest = ppm.round();
        // In range 0..=1_000_000, so the casts are exact.
        if (ppm - nearest).abs() > FLOAT_TOLERANCE_PPM || (nearest == 0.0 && percent > 0.0) {
            return Err(RateError::between(show_percent(percent), ppm.floor() as u32));
        }
        Ok(Rate(nearest as u32))
    }

    /// Parts per million.
    pub const fn ppm(self) -> u32 {
        self.0
    }

    /// The rate in percent (for display; decisions use [`ppm`](Rate::ppm)).
    pub fn as_percent(self) -> f64 {
        f64::from(self.0) / f64::from(PPM_PER_PERCENT)
    }

    /// The admission threshold: `floor(ppm · 2^64 / 1_000_000)`. A bucket is admitted iff it is below
    /// it. `Rate::ALL` gives 2^64, above every bucket.
    pub const fn threshold(self) -> u128 {
        ((self.0 as u128) << 64) / Self::MAX_PPM as u128
    }

    /// Whether a key whose bucket is `bucket` is admitted at this rate.
    #[inline]
    pub const fn admits_bucket(self, bucket: u64) -> bool {
        // bucket < floor(x) <=> bucket + 1 <= x for an integer bucket, which needs no division.
        (bucket as u128 + 1) * Self::MAX_PPM as u128 <= (self.0 as u128) << 64
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rate({self})")
    }
}

/// Exact: `12.5%`, `0.0001%`, `100%`.
impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / PPM_PER_PERCENT, self.0 % PPM_PER_PERCENT);
        if frac == 0 {
            write!(f, "{whole}%")
        } else {
            let digits = format!("{frac:04}");
            write!(f, "{whole}.{}%", digits.trim_end_matches('0'))
        }
    }
}

/// Parses `12.5%` (percent) or `125000ppm`; surrounding spaces are ignored. The value must be a
/// whole number of ppm: `0.00001%` or `1.5ppm` is an error, not rounded (see [`Rate`]).
impl FromStr for Rate {
    type Err = RateError;

    fn from_str(text: &str) -> Result<Rate, RateError> {
        let trimmed = text.trim();
        let invalid = || RateError::Unparsable { input: text.to_owned() };
        if let Some(ppm) = trimmed.strip_suffix("ppm") {
            let ppm = ppm.trim_end();
            let (whole, fraction) = decimal(ppm).ok_or_else(invalid)?;
            let whole: u32 = whole.parse().map_err(|_| invalid())?;
            if fraction.bytes().all(|digit| digit == b'0') {
                return Rate::from_ppm(whole);
            }
            if whole >= Self::MAX_PPM {
                let percent = ppm.parse::<f64>().map_err(|_| invalid())? / f64::from(PPM_PER_PERCENT);
                return Err(RateError::PercentAboveHundred { percent });
            }
            Err(RateError::between(format!("{ppm}ppm"), whole))
        } else if let Some(percent) = trimmed.strip_suffix('%') {
            let percent = percent.trim_end();
            // Not plain digits (a sign, an exponent, NaN, inf), or more than a u64 of them: the
            // `f64` rules apply, and an error names the text as given.
            let as_float = || {
                let value = percent.parse().map_err(|_| invalid())?;
                Rate::percent(value).map_err(|error| error.naming(format!("{percent}%")))
            };
            let Some((whole, fraction)) = decimal(percent) else { return as_float() };
            let Ok(whole) = whole.parse::<u64>() else { return as_float() };
            let (steps, finer) = fraction.split_at(fraction.len().min(4));
            let steps: u64 = format!("{steps:0<4}").parse().map_err(|_| invalid())?;
            let ppm = whole.saturating_mul(u64::from(PPM_PER_PERCENT)).saturating_add(steps);
            let exact = finer.bytes().all(|digit| digit == b'0');
            if ppm > u64::from(Self::MAX_PPM) || (ppm == u64::from(Self::MAX_PPM) && !exact) {
                return Err(RateError::PercentAboveHundred { percent: percent.parse().map_err(|_| invalid())? });
            }
            // At most 1_000_000 here.
            let ppm = ppm as u32;
            if exact {
                Rate::from_ppm(ppm)
            } else {
                Err(RateError::between(format!("{percent}%"), ppm))
            }
        } else {
            Err(invalid())
        }
    }
}

/// `digits[.digits]` (at least one digit in all) as its whole and fractional digits; `None` for
/// anything else. A missing whole part reads as 0.
fn decimal(text: &str) -> Option<(&str, &str)> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |part: &str| part.bytes().all(|byte| byte.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !digits(whole) || !digits(fraction) {
        return None;
    }
    Some((if whole.is_empty() { "0" } else { whole }, fraction))
}

/// A percentage as the user would have written it: `0.00001%`, or `1e-300%` where the plain form
/// would be unreadably long.
fn show_percent(percent: f64) -> String {
    let plain = format!("{percent}%");
    if plain.len() <= 24 {
        plain
    } else {
        format!("{percent:e}%")
    }
}

/// Why a rate was refused: a value the gate cannot represent, or a gate that does not take one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RateError {
    /// `Rate::from_ppm` above 1,000,000.
    #[error("a rate of {ppm} ppm is out of range: use 0 to 1000000 ppm (1000000 ppm = 100%)")]
    PpmOutOfRange {
        /// The refused value.
        ppm: u32,
    },
    /// `Rate::percent(NaN)`.
    #[error("a rate of NaN percent is not a rate: use a number from 0 to 100")]
    PercentNotANumber,
    /// A negative percentage.
    #[error("a rate of {percent}% is negative: use a number from 0 to 100")]
    PercentNegative {
        /// The refused value.
        percent: f64,
    },
    /// A percentage over 100.
    #[error("a rate of {percent}% is above 100%: use a number from 0 to 100")]
    PercentAboveHundred {
        /// The refused value.
        percent: f64,
    },
    /// A rate above 0 but below the gate's resolution of 1 ppm (`0.00001%`, `0.5ppm`).
    #[error("{input} is below the gate's resolution of 0.0001% (1 ppm): use 0% or at least 0.0001%")]
    BelowResolution {
        /// The refused value, as given.
        input: String,
    },
    /// A rate between two whole ppm (`12.34567%`, `1.5ppm`): the gate cannot admit a fraction of
    /// a step, and rounding would silently pick one for you.
    #[error("{input} is finer than the gate's resolution of 0.0001% (1 ppm): use {below} or {above}")]
    FinerThanResolution {
        /// The refused value, as given.
        input: String,
        /// The nearest rate below it.
        below: Rate,
        /// The nearest rate above it.
        above: Rate,
    },
    /// `Gate::set_rate` below 100 % on the gate of a proxy that completed its migration.
    #[error(
        "cannot set the gate to {rate}: its migration is complete, so NEW is the only store still \
         written and every key must stay on it (there is no way back from complete; to serve keys \
         from OLD again, migrate them back with a new migration from NEW to OLD)"
    )]
    GateComplete {
        /// The refused rate.
        rate: Rate,
    },
    /// `Gate::set_rate` on the gate of a proxy in a fleet, which follows the fleet's plan.
    #[error(
        "cannot set this gate to {rate}: it belongs to a fleet, whose plan sets the rates of every \
         instance: set the fleet's goal instead (Fleet::set_goal, or `zddm gate`)"
    )]
    GateInFleet {
        /// The refused rate.
        rate: Rate,
    },
    /// Text that is neither `<number>%` nor `<integer>ppm`.
    #[error(
        "cannot read {input:?} as a rate: write a percentage such as `12.5%` or parts per million such as `125000ppm`"
    )]
    Unparsable {
        /// The refused text.
        input: String,
    },
}

impl RateError {
    /// The same error, naming `input` as the value refused.
    fn naming(self, input: String) -> RateError {
        match self {
            RateError::BelowResolution { .. } => RateError::BelowResolution { input },
            RateError::FinerThanResolution { below, above, .. } => {
                RateError::FinerThanResolution { input, below, above }
            }
            other => other,
        }
    }

    /// The error for `input`, strictly between `below` ppm and the next ppm (`below` < 1_000_000).
    fn between(input: String, below: u32) -> RateError {
        match (Rate::from_ppm(below), Rate::from_ppm(below.saturating_add(1))) {
            (Ok(below), Ok(above)) if below != Rate::NONE => RateError::FinerThanResolution { input, below, above },
            _ => RateError::BelowResolution { input },
        }
    }
}
