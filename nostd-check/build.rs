// No std means no libc either: link it for the C runtime's start-up code and mem* functions.
fn main() {
    println!("cargo:rustc-link-lib=c");
}
