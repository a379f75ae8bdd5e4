//! The migrations are compiled in (`diesel_migrations::embed_migrations!`), which does not tell
//! cargo about a new migration directory: without this, an incremental build keeps the old set.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
