//! The gate: buckets as the spec defines them, admission statistics, monotonic ramps, shared rates
//! and the high-water mark.

use std::sync::{Arc, Barrier};

use proptest::prelude::*;
use sha2::{Digest, Sha256};
use zddm::{Admission, Gate, KeyError, KeySink, MigrationKey, Rate, RateError};

#[derive(MigrationKey, Debug, Clone)]
struct OrderKey {
    tenant: u32,
    order: String,
}

/// The bucket straight from `docs/key-encoding.md` section 2: no midstate, no streaming.
fn spec_bucket(salt: &str, key_bytes: &[u8]) -> u64 {
    let mut message = Vec::new();
    for part in ["zddm/v1", salt] {
        message.extend_from_slice(&(part.len() as u32).to_be_bytes());
        message.extend_from_slice(part.as_bytes());
    }
    message.resize(message.len().div_ceil(64) * 64, 0);
    message.extend_from_slice(key_bytes);
    let digest = Sha256::digest(&message);
    u64::from_be_bytes(digest[..8].try_into().unwrap())
}

proptest! {
    #[test]
    fn bucket_is_sha256_of_the_padded_prefix_and_the_key(
        salt in ".{0,140}",
        tenant: u32,
        order in ".{0,200}",
    ) {
        let key = OrderKey { tenant, order };
        let gate = Gate::new(&salt, Rate::ALL);
        prop_assert_eq!(gate.bucket(&key), spec_bucket(&salt, &key.key_bytes()));
        prop_assert_eq!(gate.try_bucket(&key), Ok(gate.bucket(&key)));
    }

    #[test]
    fn raising_the_rate_only_adds_keys(tenant: u32, order in ".{0,40}", a in 0u32..=1_000_000, b in 0u32..=1_000_000) {
        let (low, high) = (Rate::from_ppm(a.min(b)).unwrap(), Rate::from_ppm(a.max(b)).unwrap());
        let key = OrderKey { tenant, order };
        let gate = Gate::new("ramp", low);
        let before = gate.admits(&key);
        gate.set_rate(high).unwrap();
        prop_assert!(!before || gate.admits(&key), "admitted at {} but not at {}", low, high);
    }

    /// The gate skips the hash at 100 % and before any ramp; the answer must not change.
    #[test]
    fn admission_of_a_key_is_admission_of_its_bucket(
        tenant: u32,
        order in ".{0,40}",
        ramp in prop::collection::vec(prop_oneof![Just(0u32), Just(1_000_000), 0u32..=1_000_000], 0..4),
    ) {
        let key = OrderKey { tenant, order };
        let gate = Gate::new("ends", Rate::NONE);
        let bucket = gate.bucket(&key);
        prop_assert_eq!(gate.admission(&key), Admission::Never);
        for ppm in ramp {
            gate.set_rate(Rate::from_ppm(ppm).unwrap()).unwrap();
            prop_assert_eq!(gate.admission(&key), gate.admission_for_bucket(bucket), "at {} ppm", ppm);
        }
    }

    #[test]
    fn admission_is_bucket_below_threshold(bucket: u64, ppm in 0u32..=1_000_000) {
        let rate = Rate::from_ppm(ppm).unwrap();
        prop_assert_eq!(rate.admits_bucket(bucket), u128::from(bucket) < rate.threshold());
    }
}

#[test]
fn sha256_boundaries_of_key_length_match_the_spec() {
    // Keys of 0..=200 encoded bytes cross the 55/56-byte padding edge and several block edges.
    for salt in ["", "orders", &"s".repeat(49), &"t".repeat(50)] {
        let gate = Gate::new(salt, Rate::ALL);
        for len in 0..=200 {
            let key = zddm::Bytes(vec![0xa5u8; len]);
            assert_eq!(gate.bucket(&key), spec_bucket(salt, &key.key_bytes()), "salt {salt:?}, {len} bytes");
        }
    }
}

/// Over 10^6 keys, the admitted fraction at each rate is within 5 standard deviations of the rate,
/// and buckets are spread evenly. The keys are fixed, so the test is deterministic.
#[test]
fn admitted_fraction_is_within_statistical_bounds() {
    const N: u32 = 1_000_000;
    let gate = Gate::new("statistics", Rate::NONE);
    let buckets: Vec<u64> =
        (0..N).map(|i| gate.bucket(&OrderKey { tenant: i % 1000, order: format!("order-{i}") })).collect();

    for percent in [0.01, 1.0, 10.0, 50.0, 99.99] {
        let rate = Rate::percent(percent).unwrap();
        let admitted = buckets.iter().filter(|&&b| rate.admits_bucket(b)).count() as f64;
        let p = percent / 100.0;
        let expected = f64::from(N) * p;
        let sd = (f64::from(N) * p * (1.0 - p)).sqrt();
        assert!(
            (admitted - expected).abs() <= 5.0 * sd,
            "{rate}: admitted {admitted} of {N}, expected {expected} ± {:.0} (5 sd)",
            5.0 * sd
        );
    }
    assert_eq!(buckets.iter().filter(|&&b| Rate::NONE.admits_bucket(b)).count(), 0);
    assert_eq!(buckets.iter().filter(|&&b| Rate::ALL.admits_bucket(b)).count(), N as usize);

    // Chi-square over 64 equal bins: 63 degrees of freedom, mean 63, sd ~11.2.
    let mut bins = [0u32; 64];
    buckets.iter().for_each(|b| bins[(b >> 58) as usize] += 1);
    let expected = f64::from(N) / 64.0;
    let chi2: f64 = bins.iter().map(|&o| (f64::from(o) - expected).powi(2) / expected).sum();
    assert!(chi2 < 63.0 + 5.0 * 126f64.sqrt(), "buckets are not uniform: chi-square {chi2:.1} over 63 dof");
}

#[test]
fn salts_separate_migrations() {
    let (a, b) = (
        Gate::new("migration-a", Rate::percent(10.0).unwrap()),
        Gate::new("migration-b", Rate::percent(10.0).unwrap()),
    );
    let keys: Vec<_> = (0..20_000u32).map(|i| OrderKey { tenant: i, order: String::new() }).collect();
    let both = keys.iter().filter(|k| a.admits(*k) && b.admits(*k)).count();
    // Independent 10 % samples overlap on about 1 % of keys, not 10 %.
    assert!((100..400).contains(&both), "{both} keys admitted by both salts");
}

#[test]
fn every_clone_on_every_thread_sees_a_rate_change_at_once() {
    let gate = Gate::new("threads", Rate::NONE);
    let key = OrderKey { tenant: 1, order: "x".into() };
    let barrier = Arc::new(Barrier::new(5));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (gate, barrier, key) = (gate.clone(), Arc::clone(&barrier), key.clone());
            std::thread::spawn(move || {
                assert!(!gate.admits(&key));
                barrier.wait(); // the main thread sets the rate before this
                barrier.wait(); // ... and this returns only after it did
                (gate.rate(), gate.admits(&key))
            })
        })
        .collect();
    barrier.wait();
    assert_eq!(gate.set_rate(Rate::ALL).unwrap(), Rate::NONE);
    barrier.wait();
    for thread in threads {
        assert_eq!(thread.join().unwrap(), (Rate::ALL, true));
    }
}

#[test]
fn concurrent_rate_changes_keep_the_high_water_mark_the_maximum() {
    let gate = Gate::new("hwm", Rate::NONE);
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let gate = gate.clone();
            std::thread::spawn(move || {
                for i in 0..10_000u32 {
                    gate.set_rate(Rate::from_ppm((i * 7 + t * 13) % 900_001).unwrap()).unwrap();
                }
            })
        })
        .collect();
    threads.into_iter().for_each(|t| t.join().unwrap());
    let max = (0..4u32).flat_map(|t| (0..10_000u32).map(move |i| (i * 7 + t * 13) % 900_001)).max().unwrap();
    assert_eq!(gate.high_water_mark().ppm(), max);
    assert!(gate.rate() <= gate.high_water_mark());
}

#[test]
fn lowering_the_rate_leaves_keys_lapsed_not_forgotten() {
    let gate = Gate::new("ramp-down", Rate::percent(50.0).unwrap());
    let keys: Vec<_> = (0..2_000u32).map(|i| OrderKey { tenant: i, order: "o".into() }).collect();
    let admitted_at_half: Vec<bool> = keys.iter().map(|k| gate.admits(k)).collect();

    assert_eq!(gate.set_rate(Rate::percent(10.0).unwrap()).unwrap(), Rate::percent(50.0).unwrap());
    assert_eq!(gate.high_water_mark(), Rate::percent(50.0).unwrap());
    let mut seen = [0usize; 3];
    for (key, was) in keys.iter().zip(admitted_at_half) {
        let admission = gate.admission(key);
        let expected = match (gate.admits(key), was) {
            (true, _) => Admission::Admitted,
            (false, true) => Admission::Lapsed,
            (false, false) => Admission::Never,
        };
        assert_eq!(admission, expected);
        seen[admission as usize] += 1;
    }
    assert!(seen.iter().all(|&n| n > 0), "every kind of admission occurs: {seen:?}");

    // Raising again re-admits exactly the lapsed keys first; the mark never goes down.
    gate.set_rate(Rate::NONE).unwrap();
    assert_eq!(gate.high_water_mark(), Rate::percent(50.0).unwrap());
    gate.set_rate(Rate::ALL).unwrap();
    assert_eq!(gate.high_water_mark(), Rate::ALL);
    assert!(keys.iter().all(|k| gate.admission(k) == Admission::Admitted));
}

#[test]
fn rates_are_validated_never_clamped() {
    assert_eq!(Rate::from_ppm(1_000_000), Ok(Rate::ALL));
    assert_eq!(Rate::from_ppm(0), Ok(Rate::NONE));
    assert_eq!(Rate::from_ppm(1_000_001), Err(RateError::PpmOutOfRange { ppm: 1_000_001 }));
    assert_eq!(Rate::from_ppm(u32::MAX), Err(RateError::PpmOutOfRange { ppm: u32::MAX }));

    assert_eq!(Rate::percent(f64::NAN), Err(RateError::PercentNotANumber));
    assert_eq!(Rate::percent(-0.5), Err(RateError::PercentNegative { percent: -0.5 }));
    assert_eq!(Rate::percent(100.0001), Err(RateError::PercentAboveHundred { percent: 100.0001 }));
    assert!(matches!(Rate::percent(f64::INFINITY), Err(RateError::PercentAboveHundred { .. })));
    assert!(matches!(Rate::percent(f64::NEG_INFINITY), Err(RateError::PercentNegative { .. })));
    assert_eq!(Rate::percent(-0.0), Ok(Rate::NONE));
    assert_eq!(Rate::percent(100.0), Ok(Rate::ALL));
    // Whole ppm only (see `a_rate_finer_than_the_gate_resolution_is_an_error_not_rounded`); the
    // error of the double itself is not an error.
    assert_eq!(Rate::percent(0.0001).unwrap().ppm(), 1);
    assert_eq!(Rate::percent(12.3456).unwrap().ppm(), 123_456);
    assert_eq!(Rate::percent(0.01).unwrap().ppm(), 100);
    assert_eq!(Rate::percent(0.1 + 0.2).unwrap().ppm(), 3_000);

    let message = Rate::from_ppm(2_000_000).unwrap_err().to_string();
    assert!(message.contains("2000000 ppm") && message.contains("0 to 1000000"), "{message}");
    let message = Rate::percent(150.0).unwrap_err().to_string();
    assert!(message.contains("150%") && message.contains("0 to 100"), "{message}");
}

#[test]
fn rates_display_and_parse_exactly() {
    for (ppm, text) in
        [(0, "0%"), (1, "0.0001%"), (100, "0.01%"), (125_000, "12.5%"), (999_999, "99.9999%"), (1_000_000, "100%")]
    {
        let rate = Rate::from_ppm(ppm).unwrap();
        assert_eq!(rate.to_string(), text);
        assert_eq!(text.parse::<Rate>(), Ok(rate));
        assert_eq!(format!("{ppm}ppm").parse::<Rate>(), Ok(rate));
    }
    assert_eq!(" 50 % ".parse::<Rate>(), Ok(Rate::percent(50.0).unwrap()));
    assert_eq!("101%".parse::<Rate>(), Err(RateError::PercentAboveHundred { percent: 101.0 }));
    assert_eq!("1000001ppm".parse::<Rate>(), Err(RateError::PpmOutOfRange { ppm: 1_000_001 }));
    for bad in ["", "50", "half", "%", ".ppm", "-1ppm", "NaN%x", "1..5%"] {
        let err = bad.parse::<Rate>().unwrap_err();
        assert_eq!(err, RateError::Unparsable { input: bad.to_owned() }, "{bad:?}");
        assert!(err.to_string().contains("12.5%"), "the message shows the accepted forms");
    }
    assert_eq!("NaN%".parse::<Rate>(), Err(RateError::PercentNotANumber));
}

/// Issue 12, trap 3: `"0.00001%"` used to parse as 0 ppm, silently. A rate between two whole ppm
/// is now an error that names the value and the resolution, from every constructor.
#[test]
fn a_rate_finer_than_the_gate_resolution_is_an_error_not_rounded() {
    let below = |input: &str| RateError::BelowResolution { input: input.to_owned() };
    let between = |input: &str, below: u32, above: u32| RateError::FinerThanResolution {
        input: input.to_owned(),
        below: Rate::from_ppm(below).unwrap(),
        above: Rate::from_ppm(above).unwrap(),
    };

    let error = "0.00001%".parse::<Rate>().unwrap_err();
    assert_eq!(error, below("0.00001%"));
    assert_eq!(
        error.to_string(),
        "0.00001% is below the gate's resolution of 0.0001% (1 ppm): use 0% or at least 0.0001%"
    );
    let error = "12.34567%".parse::<Rate>().unwrap_err();
    assert_eq!(error, between("12.34567%", 123_456, 123_457));
    assert_eq!(
        error.to_string(),
        "12.34567% is finer than the gate's resolution of 0.0001% (1 ppm): use 12.3456% or 12.3457%"
    );
    // Text is read exactly, however many digits: no double rounds a long tail away.
    assert_eq!(
        "50.000000000000000000001%".parse::<Rate>(),
        Err(between("50.000000000000000000001%", 500_000, 500_001))
    );
    assert_eq!("0.000050%".parse::<Rate>(), Err(below("0.000050%")));
    assert_eq!("1.5ppm".parse::<Rate>(), Err(between("1.5ppm", 1, 2)));
    assert_eq!("0.5ppm".parse::<Rate>(), Err(below("0.5ppm")));
    assert_eq!("1e-5%".parse::<Rate>(), Err(below("1e-5%")), "an exponent goes through the f64 rules");
    assert!(matches!("100.00001%".parse::<Rate>(), Err(RateError::PercentAboveHundred { .. })));
    assert!(matches!("1000000.5ppm".parse::<Rate>(), Err(RateError::PercentAboveHundred { .. })));
    // Trailing zeros are exact, and so is every whole ppm.
    assert_eq!("12.345600%".parse::<Rate>(), Ok(Rate::from_ppm(123_456).unwrap()));
    assert_eq!("7.000ppm".parse::<Rate>(), Ok(Rate::from_ppm(7).unwrap()));
    assert_eq!("0.0001%".parse::<Rate>(), Ok(Rate::from_ppm(1).unwrap()));
    assert_eq!(".5%".parse::<Rate>(), Ok(Rate::from_ppm(5_000).unwrap()));

    // `Rate::percent(f64)` the same way.
    assert_eq!(Rate::percent(0.00001), Err(below("0.00001%")));
    assert_eq!(Rate::percent(0.00004), Err(below("0.00004%")));
    assert_eq!(Rate::percent(0.00006), Err(below("0.00006%")), "0.6 ppm is not rounded up to 1");
    assert_eq!(Rate::percent(12.34567), Err(between("12.34567%", 123_456, 123_457)));
    assert_eq!(Rate::percent(100.0 / 3.0), Err(between("33.333333333333336%", 333_333, 333_334)));
    assert!(matches!(Rate::percent(1e-300), Err(RateError::BelowResolution { input }) if input == "1e-300%"));
    assert!(matches!(Rate::percent(f64::MIN_POSITIVE), Err(RateError::BelowResolution { .. })));
    // And the other refusals stay what they were.
    assert_eq!(Rate::percent(f64::NAN), Err(RateError::PercentNotANumber));
    assert_eq!("-0.00001%".parse::<Rate>(), Err(RateError::PercentNegative { percent: -0.00001 }));
    assert_eq!("150%".parse::<Rate>(), Err(RateError::PercentAboveHundred { percent: 150.0 }));

    // Every whole ppm parses back from its display, and is a valid `percent` too.
    for ppm in (0..=Rate::MAX_PPM).step_by(997).chain([1, 999_999, Rate::MAX_PPM]) {
        let rate = Rate::from_ppm(ppm).unwrap();
        assert_eq!(rate.to_string().parse::<Rate>(), Ok(rate));
        assert_eq!(Rate::percent(rate.as_percent()), Ok(rate), "{rate}");
        assert_eq!(Rate::percent(f64::from(ppm) / 10_000.0), Ok(rate), "{rate}");
    }
}

#[test]
fn thresholds_are_exact_at_the_extremes() {
    assert_eq!(Rate::NONE.threshold(), 0);
    assert_eq!(Rate::ALL.threshold(), 1u128 << 64);
    assert_eq!(Rate::from_ppm(1).unwrap().threshold(), 18_446_744_073_709); // floor(2^64 / 10^6)
    assert_eq!(Rate::percent(50.0).unwrap().threshold(), 1u128 << 63);
    assert!(Rate::ALL.admits_bucket(u64::MAX));
    assert!(!Rate::NONE.admits_bucket(0));
    assert!(!Rate::percent(50.0).unwrap().admits_bucket(1 << 63));
    assert!(Rate::percent(50.0).unwrap().admits_bucket((1 << 63) - 1));
}

/// A key whose sequence is too long for the u32 length prefix, without allocating 4 GiB.
struct Oversized;

impl MigrationKey for Oversized {
    fn encode_key<S: KeySink + ?Sized>(&self, sink: &mut S) {
        sink.write_u64(1);
        sink.write_len(u32::MAX as usize + 1);
    }

    fn write_schema(out: &mut String) {
        out.push_str("seq<u64>");
    }
}

#[test]
#[cfg(target_pointer_width = "64")]
fn an_unencodable_key_is_an_error_and_never_admitted() {
    let too_long = KeyError::TooLong { len: u32::MAX as usize + 1 };
    assert_eq!(Oversized.try_key_bytes(), Err(too_long.clone()));
    assert!(too_long.to_string().contains("u32 length prefix"));
    let gate = Gate::new("oversized", Rate::ALL);
    assert_eq!(gate.try_bucket(&Oversized), Err(too_long));
    assert_eq!(gate.bucket(&Oversized), u64::MAX);
    assert!(!gate.admits(&Oversized));
    assert_eq!(gate.admission(&Oversized), Admission::Never);
    let panic = std::panic::catch_unwind(|| Oversized.key_bytes()).unwrap_err();
    assert!(panic.downcast_ref::<String>().unwrap().contains("u32 length prefix"));
}

#[test]
fn gates_debug_print_their_state() {
    let gate = Gate::new("orders", Rate::percent(5.0).unwrap());
    gate.set_rate(Rate::percent(1.0).unwrap()).unwrap();
    assert_eq!(format!("{gate:?}"), r#"Gate { salt: "orders", rate: Rate(1%), high_water_mark: Rate(5%) }"#);
    assert_eq!(gate.salt(), "orders");
}
