//! `sqlx::migrate!` embeds `migrations/` at compile time; rebuild when a migration changes
//! or is added (stable cargo does not track the directory otherwise).
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
