//! Build script of the loader (`loader/Cargo.toml` points here).
//!
//! The loader is a freestanding static executable: no C runtime, no libc,
//! no dynamic section, linked at the fixed address chosen in `linker.ld`.
use std::path::PathBuf;

fn main() {
    let loader = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let script = loader.parent().expect("loader/ is inside the workspace").join("linker.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-changed=build.rs");
    for arg in [
        format!("-T{}", script.display()),
        "-nostartfiles".into(),
        "-nostdlib".into(),
        "-static".into(),
        "-no-pie".into(),
        "-Wl,--build-id=none".into(),
        "-Wl,-z,noexecstack".into(),
        "-Wl,--gc-sections".into(),
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
