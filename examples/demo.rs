//! The gate on 200,000 order keys: ramp the rate up, watch admitted keys only ever grow, ramp it down
//! and see the high-water mark remember which keys may already be in NEW.
//!
//! `cargo run --release --example demo`

use zddm::{Admission, Gate, MigrationKey, Rate};

#[derive(MigrationKey)]
struct OrderKey {
    tenant: u32,
    order: String,
}

fn main() -> Result<(), zddm::RateError> {
    let keys: Vec<OrderKey> =
        (0..200_000u32).map(|i| OrderKey { tenant: i % 500, order: format!("ORD-{i:07}") }).collect();

    let sample = &keys[42];
    let gate = Gate::new("orders-to-postgres", Rate::NONE);
    println!("key {{ tenant: {}, order: {:?} }}", sample.tenant, sample.order);
    println!("  schema  {}", OrderKey::schema());
    println!("  bytes   {}", sample.key_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>());
    println!(
        "  bucket  {:#018x} (salt {:?}; the same in every process and language)\n",
        gate.bucket(sample),
        gate.salt()
    );

    let mut previous: Vec<bool> = vec![false; keys.len()];
    for step in ["0.1%", "1%", "10%", "50%", "100%"] {
        gate.set_rate(step.parse()?);
        let now: Vec<bool> = keys.iter().map(|k| gate.admits(k)).collect();
        let admitted = now.iter().filter(|&&a| a).count();
        let dropped = previous.iter().zip(&now).filter(|(&was, &is)| was && !is).count();
        println!(
            "rate {:>6}: {admitted:>7} of {} keys admitted ({:.3}%), {dropped} dropped since the last step",
            gate.rate(),
            keys.len(),
            100.0 * admitted as f64 / keys.len() as f64,
        );
        previous = now;
    }

    // Ramp down: keys admitted at 100% may be in NEW, so their writes must keep invalidating it.
    gate.set_rate(Rate::percent(5.0)?);
    let mut counts = [0usize; 3];
    keys.iter().for_each(|k| counts[gate.admission(k) as usize] += 1);
    println!(
        "\nramped down to {} (high-water mark {}): {} admitted, {} lapsed (writes invalidate NEW), {} never admitted",
        gate.rate(),
        gate.high_water_mark(),
        counts[Admission::Admitted as usize],
        counts[Admission::Lapsed as usize],
        counts[Admission::Never as usize],
    );
    Ok(())
}
