//! The specs shipped in `examples/` (applied by `scripts/quickstart.sh`) parse, and the
//! desktop one declares what the quick start's URL opens.

use std::path::Path;

#[test]
fn every_example_spec_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/ exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(errors) = verse_spec::load(&path) {
                panic!("{errors}");
            }
            seen += 1;
        }
    }
    assert!(seen >= 2, "found {seen} example specs");
    let desktop = verse_spec::load(&dir.join("quickstart-desktop.toml")).unwrap();
    let writer = &desktop.envs["writer"];
    assert!(
        writer.desktop.is_some(),
        "the quick start opens writer's desktop"
    );
    let plain = verse_spec::load(&dir.join("quickstart.toml")).unwrap();
    for (name, env) in &plain.envs {
        assert_eq!(
            &desktop.envs[name], env,
            "quickstart-desktop.toml keeps {name} as quickstart.toml has it"
        );
    }
}
