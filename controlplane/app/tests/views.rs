//! The JSON shapes every front end prints are documented: `docs/views/<name>.schema.json`
//! is the JSON Schema of each view, generated from the types. This test fails when a
//! committed schema is stale (`CP_BLESS=1` rewrites them; `cargo xtask codegen` does
//! too, with every other golden), and when a schema exists for a view that is gone
//! (blessing removes it).

use std::path::PathBuf;

fn dir() -> PathBuf {
    cp_testkit::repo_root().join("docs/views")
}

#[test]
fn committed_view_schemas_are_fresh() {
    let dir = dir();
    let update = cp_testkit::blessing();
    let mut stale = Vec::new();
    let schemas = cp_app::views::schemas();
    for (name, schema) in &schemas {
        let path = dir.join(format!("{name}.schema.json"));
        let text = serde_json::to_string_pretty(schema).unwrap() + "\n";
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(path.display().to_string());
        }
    }
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        let view = name.trim_end_matches(".schema.json");
        if name.ends_with(".schema.json") && !schemas.contains_key(view) {
            if update {
                std::fs::remove_file(dir.join(&name)).unwrap();
            } else {
                stale.push(format!("{name} (no such view any more)"));
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale view schemas; {}:\n  {}",
        cp_testkit::bless_hint(),
        stale.join("\n  ")
    );
}

#[test]
fn the_plan_schema_documents_its_stable_fields() {
    let plan = &cp_app::views::schemas()["plan"];
    let props = plan["properties"].as_object().unwrap();
    for field in [
        "format",
        "environment",
        "driver",
        "layers",
        "summary",
        "changes_pending",
        "fingerprint",
    ] {
        assert!(props.contains_key(field), "plan has no `{field}`: {plan}");
    }
}
