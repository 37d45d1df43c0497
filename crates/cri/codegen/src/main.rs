//! Regenerate ../src/gen/runtime.v1.rs from ../proto/api.proto:
//!   cd codegen && cargo run   (needs protoc on PATH or $PROTOC)
fn main() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    tonic_prost_build::configure()
        .build_server(false) // client only
        .build_transport(true)
        .out_dir(root.join("src/gen"))
        .compile_protos(&[root.join("proto/api.proto")], &[root.join("proto")])
        .expect("protoc codegen");
    eprintln!("wrote src/gen/runtime.v1.rs");
}
