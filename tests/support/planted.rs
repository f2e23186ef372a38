//! The differences the verification tests plant after a clean pass over keys 0 to 39, and what the
//! next pass must report of them, whatever the proxy.

use zddm::verify::Report;
use zddm::MigrationKey;

/// Example keys of one kind, read back and sorted.
pub fn keys(examples: &[Vec<u8>]) -> Vec<u64> {
    let mut keys: Vec<u64> = examples.iter().map(|k| u64::from_key_bytes(k).unwrap()).collect();
    keys.sort();
    keys
}

/// Key 100 missing, key 1 extra, keys 2 and 3 differing, `in_doubt` still in doubt, two keys that
/// passed on the second look (a write fixed one during the delay, a read repaired the other), the
/// four real differences repaired, and 41 keys checked: not clean.
pub fn check_planted(report: &Report, in_doubt: &[u64], name: &str) {
    assert_eq!(keys(&report.missing.examples), [100], "{name}: {report}");
    assert_eq!(keys(&report.extra.examples), [1], "{name}: {report}");
    assert_eq!(keys(&report.differs.examples), [2, 3], "{name}: {report}");
    assert_eq!(keys(&report.in_doubt.examples), in_doubt, "{name}: {report}");
    assert_eq!((report.transient, report.repaired, report.unresolved.count), (2, 4, 0), "{name}: {report}");
    assert!(!report.clean() && report.checked == 41, "{name}: {report}");
}
