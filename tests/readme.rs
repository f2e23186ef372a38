//! The README's `Cargo.toml` lines, Quickstart and repository example, compiled and run exactly as
//! they stand, as a new project of their own (zddm patched in from this checkout, since it is not published): what a
//! newcomer pastes works without anything the README does not say.

use std::path::Path;
use std::process::Command;

/// The first fenced block of `language` after `heading`.
fn block<'a>(readme: &'a str, heading: &str, language: &str) -> &'a str {
    let section = &readme[readme.find(heading).unwrap_or_else(|| panic!("no {heading:?} in the README"))..];
    let fence = format!("```{language}\n");
    let start = section.find(&fence).unwrap_or_else(|| panic!("no {language} block after {heading:?}")) + fence.len();
    let end = section[start..].find("```").expect("an unclosed block");
    &section[start..start + end]
}

#[test]
fn the_quickstart_and_the_repository_example_build_and_run_from_the_readme_alone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let dependencies = block(&readme, "## Add it to your project", "toml");
    let programs = [
        ("quickstart", block(&readme, "## Quickstart", "rust")),
        ("repository", block(&readme, "## Migrating your repository trait", "rust")),
    ];

    let project = tempfile::tempdir().unwrap();
    let manifest = format!(
        "[package]\nname = \"quickstart\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n{dependencies}\n\
         [patch.crates-io]\nzddm = {{ path = {:?} }}\nzddm-macros = {{ path = {:?} }}\n\n[workspace]\n",
        root.join("zddm"),
        root.join("zddm-macros"),
    );
    std::fs::write(project.path().join("Cargo.toml"), manifest).unwrap();
    // The workspace's lock file: the same versions as the rest of the suite, all available offline.
    std::fs::copy(root.join("Cargo.lock"), project.path().join("Cargo.lock")).unwrap();
    std::fs::create_dir_all(project.path().join("src/bin")).unwrap();
    for (name, program) in programs {
        std::fs::write(project.path().join(format!("src/bin/{name}.rs")), program).unwrap();
    }

    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), Into::into);
    for (name, _) in programs {
        let output = Command::new(env!("CARGO"))
            .args(["run", "--quiet", "--offline", "--bin", name])
            .current_dir(project.path())
            .env("CARGO_TARGET_DIR", target.join("readme"))
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "the README's {name} as pasted failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
