//! The fraction of keys a gate admits.

use std::fmt;
use std::str::FromStr;

/// A fraction of the key space, in parts per million: what share of keys a [`Gate`](crate::Gate)
/// admits into the migration.
///
/// Exact by construction: a rate is an integer number of ppm, so every process of a fleet computes
/// the same admission threshold. Out-of-range input is an error, never clamped.
///
/// ```
/// use zddm::Rate;
///
/// assert_eq!(Rate::percent(12.5)?.ppm(), 125_000);
/// assert_eq!(Rate::from_ppm(1)?.to_string(), "0.0001%");
/// assert!(Rate::from_ppm(1_000_001).is_err());
/// assert_eq!("50%".parse::<Rate>()?, Rate::percent(50.0)?);
/// # Ok::<(), zddm::RateError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Rate(u32);

const PPM_PER_PERCENT: u32 = 10_000;

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

    /// A rate of `percent` %, 0 to 100, rounded to the nearest ppm (halves away from zero).
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
        // In range 0..=1_000_000 after rounding, so the cast is exact.
        Ok(Rate((percent * f64::from(PPM_PER_PERCENT)).round() as u32))
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

/// Parses `12.5%` (percent, rounded to the nearest ppm) or `125000ppm`; surrounding spaces are
/// ignored.
impl FromStr for Rate {
    type Err = RateError;

    fn from_str(text: &str) -> Result<Rate, RateError> {
        let trimmed = text.trim();
        let invalid = || RateError::Unparsable { input: text.to_owned() };
        if let Some(ppm) = trimmed.strip_suffix("ppm") {
            Rate::from_ppm(ppm.trim_end().parse().map_err(|_| invalid())?)
        } else if let Some(percent) = trimmed.strip_suffix('%') {
            let percent: f64 = percent.trim_end().parse().map_err(|_| invalid())?;
            Rate::percent(percent)
        } else {
            Err(invalid())
        }
    }
}

/// Why a rate was refused.
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
    /// Text that is neither `<number>%` nor `<integer>ppm`.
    #[error(
        "cannot read {input:?} as a rate: write a percentage such as `12.5%` or parts per million such as `125000ppm`"
    )]
    Unparsable {
        /// The refused text.
        input: String,
    },
}
