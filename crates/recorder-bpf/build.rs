//! Compiles the BPF program with clang and generates its libbpf-rs skeleton
//! into OUT_DIR (never into src/, so it cannot drift from the C source).

use std::env;
use std::ffi::OsStr;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

const SRC: &str = "src/bpf/credtrail.bpf.c";
const HDR: &str = "src/bpf/credtrail.h";

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let arch = env::var("CARGO_CFG_TARGET_ARCH").expect("cargo sets CARGO_CFG_TARGET_ARCH");
    let include = PathBuf::from("include").join(&arch);
    if !include.join("vmlinux.h").exists() {
        panic!(
            "{}/vmlinux.h is missing: run scripts/gen-vmlinux.sh on a {arch} machine with BTF",
            include.display()
        );
    }

    if let Err(err) = SkeletonBuilder::new()
        .source(SRC)
        .clang_args([
            OsStr::new("-I"),
            include.as_os_str(),
            OsStr::new("-Isrc/bpf"),
            OsStr::new("-Wall"),
            OsStr::new("-Werror"),
        ])
        .build_and_generate(out.join("credtrail.skel.rs"))
    {
        panic!(
            "building the BPF program failed: {err:#}\n\
             hint: it needs clang (Debian: apt-get install clang libelf-dev); scripts/setup installs both"
        );
    }

    println!("cargo:rerun-if-changed={SRC}");
    println!("cargo:rerun-if-changed={HDR}");
    // The program's parts, included by SRC.
    println!("cargo:rerun-if-changed=src/bpf");
    println!("cargo:rerun-if-changed={}", include.display());
}
