//! Replays every committed fuzz corpus input (`fuzz/corpus/<target>/`) through the same
//! checks the fuzz targets run, on stable and without sanitizers: what fuzzing once found
//! stays fixed, and what it covered stays covered.

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{} holds no inputs", dir.display());
    files
}

fn replay(target: &str) {
    let (_, check) = portcullis_fuzz_checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no fuzz target `{target}`"));
    for file in corpus(target) {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        // Name the input that fails; the check's own message says what broke.
        let result = std::panic::catch_unwind(|| check(&data));
        assert!(result.is_ok(), "{target}: {} failed", file.display());
    }
}

#[test]
fn config_corpus() {
    replay("config");
}

#[test]
fn framing_corpus() {
    replay("framing");
}

#[test]
fn head_corpus() {
    replay("head");
}

#[test]
fn paths_corpus() {
    replay("paths");
}

#[test]
fn plugin_edits_corpus() {
    replay("plugin_edits");
}

#[test]
fn every_target_has_a_corpus_test() {
    for (name, _) in portcullis_fuzz_checks::TARGETS {
        assert!(
            include_str!("corpora.rs").contains(&format!("replay(\"{name}\")")),
            "`{name}` has no replay test"
        );
    }
}
