//! The dashboard (`dashboard/dist`, made by `make dashboard`) is embedded by rust-embed in release
//! builds and read from the folder at run time in debug builds. rust-embed resolves the folder's
//! real path when this crate compiles; had the folder not existed then, a debug binary would
//! never find it, even once built (and a release binary would not notice new files). So the
//! folder is made here when missing, and any change in it rebuilds the crate.

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dist = std::path::Path::new(&manifest).join("../dashboard/dist");
    if let Err(e) = std::fs::create_dir_all(&dist) {
        println!("cargo::warning=could not create {}: {e}", dist.display());
    }
    println!("cargo::rerun-if-changed=../dashboard/dist");
}
