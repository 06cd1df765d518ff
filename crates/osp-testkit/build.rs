//! Copies the protobuf descriptors that `temporalio-protos` publishes (its `links` metadata)
//! into this crate's OUT_DIR, so the history reader can decode the protobuf JSON the
//! `temporal` CLI exports without a second copy of the .proto files.

use std::path::PathBuf;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    let target = out.join("temporal_descriptors.bin");
    let source = std::env::var_os("DEP_TEMPORALIO_PROTOS_DESCRIPTOR_PATH").map(PathBuf::from);
    println!("cargo:rerun-if-env-changed=DEP_TEMPORALIO_PROTOS_DESCRIPTOR_PATH");
    // Without the descriptors only the CLI format is unreadable; an empty file says so at
    // run time instead of breaking the build.
    let bytes = source
        .as_ref()
        .and_then(|path| {
            println!("cargo:rerun-if-changed={}", path.display());
            std::fs::read(path).ok()
        })
        .unwrap_or_default();
    if let Err(error) = std::fs::write(&target, bytes) {
        println!("cargo:warning=cannot write {}: {error}", target.display());
    }
}
