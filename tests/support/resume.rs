//! What the backfill tests share, whatever proxy the pass runs over: a backfill killed at random
//! moments and resumed from its checkpoint until one run finishes, and writers hammering hot keys
//! while a pass runs.

use std::time::Duration;

use zddm::backfill::{Backfill, BackfillError, Checkpoints, Pass, Progress};

use crate::stall::{Chaos, Stall};

/// What it took.
#[derive(Debug)]
pub struct Resumed {
    pub runs: u32,
    pub kills: u32,
    pub done: Progress,
}

/// Chaos on a store: 2 % of calls fail before they apply, 2 % after, 20 % wait up to 2 ms.
pub fn chaos(seed: u64) -> Option<Chaos> {
    Some(Chaos {
        fail_before_ppm: 20_000,
        fail_after_ppm: 20_000,
        delay_ppm: 200_000,
        max_delay: Duration::from_millis(2),
        seed,
    })
}

/// Runs `proxy`'s backfill until a run finishes. Before each run, ten writes of random keys below
/// `keys` through `write` (`None` deletes), with the stores calm; during it, chaos on both of the
/// proxy's stores (`stores`: OLD and NEW), and a kill after up to `kill_ms`.
pub async fn kill_and_resume<P: Pass, O, N>(
    proxy: &P,
    stores: (&Stall<O>, &Stall<N>),
    checkpoints: &impl Checkpoints,
    (keys, kill_ms): (u64, u64),
    mut write: impl AsyncFnMut(u64, Option<String>),
    name: &str,
) -> Resumed {
    let storm = |seeds: Option<(u64, u64)>| {
        stores.0.chaos(seeds.and_then(|seeds| chaos(seeds.0)));
        stores.1.chaos(seeds.and_then(|seeds| chaos(seeds.1)));
    };
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut random = move |below: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % below
    };
    let (mut kills, mut runs) = (0, 0);
    let done = loop {
        runs += 1;
        for _ in 0..10 {
            let key = random(keys);
            let value = (random(4) != 0).then(|| format!("value {key} of round {runs}"));
            write(key, value).await;
        }
        storm(Some((random(u64::MAX) | 1, random(u64::MAX) | 1)));
        let backfill = Backfill::new(proxy).batch(1 + random(60) as usize).attempts(2).back_off(
            Duration::from_millis(50),
            Duration::from_micros(100),
            Duration::from_millis(1),
        );
        let run = backfill.run(checkpoints, tokio::time::sleep, |_| {});
        let outcome = tokio::time::timeout(Duration::from_millis(1 + random(kill_ms)), run).await;
        storm(None);
        match outcome {
            Err(_) => kills += 1,
            Ok(Err(BackfillError::Store { .. })) => {}
            Ok(Err(other)) => panic!("{name}: {other}"),
            Ok(Ok(done)) => break done,
        }
        assert!(runs < 2_000, "{name}: the backfill never finished");
    };
    eprintln!("{name}: {runs} runs, {kills} killed; {done}");
    assert!(kills >= 3, "{name}: only {kills} runs were killed; the test must kill some");
    assert!(done.done && done.scanned > 0, "{name}: {done}");
    Resumed { runs, kills, done }
}

/// Runs `pass` while `writers` tasks put and delete hot keys below `keys` through `write` (a value
/// to put, `None` to delete: every `delete_every`th write of each task); the pass's outcome and how
/// many writes were made meanwhile.
pub async fn with_writers<T, W, F>(
    (writers, keys, delete_every): (u64, u64, u64),
    write: W,
    pass: impl std::future::Future<Output = T>,
) -> (T, u64)
where
    W: Fn(u64, Option<String>) -> F + Clone + Send + 'static,
    F: std::future::Future<Output = ()> + Send,
{
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let (write, stop) = (write.clone(), stop.clone());
            tokio::spawn(async move {
                let mut round = 1;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    // Hot keys spread over the key space, so the scan meets them mid-run.
                    let key = (round * 7 + w * 13) % 24 * (keys / 24);
                    let value = (round % delete_every != 0).then(|| format!("value {key} of round {round}"));
                    write(key, value).await;
                    round += 1;
                    tokio::task::yield_now().await;
                }
                round - 1
            })
        })
        .collect();
    let outcome = pass.await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut writes = 0;
    for task in tasks {
        writes += task.await.unwrap();
    }
    (outcome, writes)
}

/// `with_writers`' `write` for any proxy with `put` and `delete` (the proxies share no trait): a
/// value is put, `None` deletes.
#[macro_export]
macro_rules! writes_through {
    ($proxy:expr) => {{
        let proxy = $proxy.clone();
        move |key: u64, value: ::std::option::Option<::std::string::String>| {
            let proxy = proxy.clone();
            async move {
                match value {
                    ::std::option::Option::Some(value) => proxy.put(&key, &value).await.unwrap(),
                    ::std::option::Option::None => proxy.delete(&key).await.unwrap(),
                }
            }
        }
    }};
}
