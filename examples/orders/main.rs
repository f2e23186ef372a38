//! An order repository migrating from a legacy store to a new service with `#[zddm::migrate]`:
//! the application keeps calling its own `Orders` trait while the gate ramps and the new store
//! fills; the legacy store can no longer be written behind the migration's back.
//!
//! `cargo run -p zddm-examples --bin orders`

mod repository;

use repository::{LegacyOrders, Order, OrderKey, OrderService, Orders, OrdersMigration};
use zddm::{Gate, Phase, Rate};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let keys: Vec<OrderKey> =
        (0..10_000u32).map(|i| OrderKey { tenant: i % 40, number: format!("SO-{i:05}") }).collect();
    let legacy = LegacyOrders::with_rows(
        keys.iter().enumerate().map(|(i, key)| (key.clone(), Order { items: 1 + i as u32 % 5, total_cents: 995 })),
    );
    // Before the migration starts, the old bulk loader is still fine to call; clippy flags every
    // call of it (clippy.toml), so each one must say why it is safe.
    #[allow(clippy::disallowed_methods)]
    legacy.import([(OrderKey { tenant: 0, number: "SO-IMPORTED".into() }, Order { items: 1, total_cents: 100 })]);
    let orders = OrdersMigration::new(legacy, OrderService::default(), Gate::new("orders-to-service", Rate::NONE));

    // The application's traffic: mostly reads, some saves, through its own trait.
    for step in ["0%", "5%", "25%", "100%"] {
        orders.proxy().gate().set_rate(step.parse()?)?;
        let before = orders.proxy().stats();
        for i in 0..30_000usize {
            let key = &keys[i.wrapping_mul(7919) % keys.len()];
            if i % 10 == 0 {
                orders.save_order(key, &Order { items: 9, total_cents: 1_990 }).await?;
            } else {
                orders.get_order(key).await?;
            }
        }
        let window = orders.proxy().stats().since(&before);
        println!(
            "gate {step:>4}: {:>5} orders copied into the new service, {:>5.1}% of reads still served by the legacy store",
            orders.proxy().stats().backfills,
            100.0 * window.old_read_ratio()
        );
    }

    // Every order read once more: the new service answers all of them.
    orders.proxy().set_phase(Phase::Live)?;
    let before = orders.proxy().stats();
    for key in &keys {
        orders.get_order(key).await?;
    }
    let last = orders.proxy().stats().since(&before);
    println!(
        "live: {} reads, {:.1}% from the legacy store; {} orders counted by the legacy store",
        last.reads_from_new + last.reads_from_old,
        100.0 * last.old_read_ratio(),
        orders.count_orders().await?
    );
    Ok(())
}
