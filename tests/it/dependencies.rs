//! The dependencies are kept ones, and the README says why each is there: a crate that is added
//! without a line in its table, or a locked crate whose author marks it deprecated (as
//! `serde_yaml` 0.9.34+deprecated is), fails here.
use std::path::Path;

fn read(file: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(file)).unwrap()
}

/// The names of a `Cargo.toml` table of dependencies.
fn names(manifest: &toml::Table, table: &str) -> Vec<String> {
    manifest[table]
        .as_table()
        .unwrap()
        .keys()
        .cloned()
        .collect()
}

#[test]
fn the_readme_says_why_each_direct_dependency_is_there() {
    let manifest: toml::Table = read("Cargo.toml").parse().unwrap();
    let readme = read("README.md");
    let section = readme
        .split_once("## Dependencies")
        .expect("a Dependencies section in the README")
        .1;
    let section = section.split("\n## ").next().unwrap();
    let mut missing = Vec::new();
    for name in names(&manifest, "dependencies")
        .into_iter()
        .chain(names(&manifest, "dev-dependencies"))
    {
        if !section.contains(&format!("`{name}`")) {
            missing.push(name);
        }
    }
    assert!(
        missing.is_empty(),
        "the README's Dependencies section does not name {missing:?}"
    );
}

#[test]
fn no_locked_crate_is_marked_deprecated() {
    let lock: toml::Table = read("Cargo.lock").parse().unwrap();
    let deprecated: Vec<String> = lock["package"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| {
            let version = p["version"].as_str()?;
            version
                .contains("deprecated")
                .then(|| format!("{} {version}", p["name"].as_str().unwrap_or("?")))
        })
        .collect();
    assert!(deprecated.is_empty(), "deprecated crates: {deprecated:?}");
}

#[test]
fn the_openapi_files_are_read_without_serde_yaml() {
    let manifest: toml::Table = read("Cargo.toml").parse().unwrap();
    let deps = names(&manifest, "dependencies");
    assert!(!deps.contains(&"serde_yaml".to_string()), "{deps:?}");
    // What the sandbox and the tests read them with, and what it makes of them.
    let spec: serde_json::Value =
        serde_saphyr::from_str(&read("openapi/messages-only-2.16.yaml")).unwrap();
    let request = &spec["components"]["schemas"]["create_message_request"];
    assert_eq!(
        request["properties"]["from"]["properties"]["id"]["type"],
        "integer"
    );
}
