//! Rebuilds the crate when a migration is added or removed: `sqlx::migrate!` embeds
//! the files it saw, and cargo only tracks files that already existed.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
