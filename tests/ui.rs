//! Every error the macros emit, with its message and span (`ui-tests/`; regenerate the `.stderr`
//! files with `TRYBUILD=overwrite cargo test --test ui` after a deliberate change, and read the diff).

#[test]
fn derive_errors() {
    trybuild::TestCases::new().compile_fail("ui-tests/derive/*.rs");
}

#[test]
fn repository_errors() {
    trybuild::TestCases::new().compile_fail("ui-tests/migrate/*.rs");
}
