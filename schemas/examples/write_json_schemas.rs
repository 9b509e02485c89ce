//! Writes the JSON Schema files under `schemas/json/` from the record types.
fn main() -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("json");
    std::fs::create_dir_all(&dir)?;
    for (name, text) in apo_schemas::json_schema::all() {
        std::fs::write(dir.join(name), text)?;
        println!("wrote {}", dir.join(name).display());
    }
    Ok(())
}
