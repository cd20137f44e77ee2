//! Rebuilds the crate when a migration changes: `sqlx::migrate!` embeds the files at compile
//! time, and cargo does not otherwise know it reads them. The directory is watched whole,
//! so SQLite's files (`migrations/`) and PostgreSQL's (`migrations/postgres/`) both count.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
