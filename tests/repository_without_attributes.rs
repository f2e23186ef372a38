//! At the end of a migration the attributes come off, and what is left must be plain Rust that
//! compiles: the example's own repository module (`examples/orders/repository.rs`), with every
//! `#[zddm::migrate(…)]`, `#[zddm::backend]` and `#[zddm(…)]` line removed, compiles and runs.

use std::path::Path;

#[test]
fn the_example_repository_compiles_without_the_zddm_attributes() {
    let source = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/orders/repository.rs"))
        .expect("the example's repository module");
    let is_zddm_attribute = |line: &str| {
        let line = line.trim();
        line.starts_with("#[zddm::migrate(") || line == "#[zddm::backend]" || line.starts_with("#[zddm(")
    };
    let removed = source.lines().filter(|line| is_zddm_attribute(line)).count();
    assert_eq!(removed, 4, "the example has one migrate, two backend and one classification attribute");
    let plain: String =
        source.lines().filter(|line| !is_zddm_attribute(line)).map(|line| format!("{line}\n")).collect();
    assert!(!plain.contains("zddm::migrate") && !plain.contains("zddm::backend"));

    // The plain module, as a program that uses the trait directly on both stores, as the
    // application will once the migration is over.
    let program = format!(
        "{plain}\n\
         fn main() {{\n\
             let store = OrderService::default();\n\
             let key = OrderKey {{ tenant: 1, number: \"SO-1\".into() }};\n\
             let order = Order {{ items: 2, total_cents: 995 }};\n\
             zddm::block_on(async {{\n\
                 store.save_order(&key, &order).await.unwrap();\n\
                 assert_eq!(store.get_order(&key).await.unwrap(), Some(order));\n\
                 let legacy = LegacyOrders::default();\n\
                 assert_eq!(legacy.count_orders().await.unwrap(), 0);\n\
             }});\n\
         }}\n"
    );
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("after-migration.rs");
    std::fs::write(&path, program).unwrap();
    trybuild::TestCases::new().pass(&path);
}
