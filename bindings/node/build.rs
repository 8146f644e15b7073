//! Sets the linker up for a Node addon (symbols resolved by the node process at load).

fn main() {
    napi_build::setup();
}
