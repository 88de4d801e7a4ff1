//! Release builds of the binary on x86_64 Linux lay out their code in the
//! order of `link-order.txt`: the functions a running proxy
//! executes (start-up, the request path, /metrics), hottest first, written
//! by `benches/load/link-order.sh` from a callgrind run. Code the proxy
//! runs then sits on a few contiguous pages instead of being spread over
//! the whole `.text` (the kernel maps code 64 KiB around each first touch,
//! so scattered functions made most of `.text` resident), and the request
//! path shares fewer cache lines and TLB entries with code that never runs.
//!
//! The file sits beside this script because it is a build input (the
//! Dockerfile copies it with the sources). A name it lists that a build no
//! longer has is skipped, and a missing file means the default layout: a
//! stale or absent file costs layout, never a failed build. The layout needs lld, Rust's
//! default linker on x86_64 Linux since 1.90: it is used only with such a
//! toolchain and no linker of the builder's own choosing (RUSTFLAGS or
//! CARGO_TARGET_*_LINKER); `LGTM_LINK_ORDER=off` turns it off.

use std::env;
use std::path::Path;
use std::process::Command;

fn main() {
    let order = Path::new("link-order.txt");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=LGTM_LINK_ORDER");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let wanted = env::var("PROFILE").as_deref() == Ok("release")
        && env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-gnu")
        && env::var("LGTM_LINK_ORDER").as_deref() != Ok("off")
        && default_linker_is_lld();
    if !wanted || !order.exists() {
        return;
    }
    let path = Path::new(&env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join(order);
    println!(
        "cargo:rustc-link-arg-bin=lgtm-proxy=-Wl,--symbol-ordering-file={}",
        path.display()
    );
    println!("cargo:rustc-link-arg-bin=lgtm-proxy=-Wl,--no-warn-symbol-ordering");
}

/// Whether the binary is linked by rustc's own lld: a toolchain of 1.90 or
/// later, and no linker chosen by flags or by cargo's linker setting.
fn default_linker_is_lld() -> bool {
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if flags.contains("linker") || flags.contains("fuse-ld") {
        return false;
    }
    if env::var_os("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_some() {
        return false;
    }
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let text = String::from_utf8_lossy(&out.stdout);
    let mut version = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split('.')
        .map(|part| part.parse::<u32>().unwrap_or(0));
    let (major, minor) = (version.next().unwrap_or(0), version.next().unwrap_or(0));
    (major, minor) >= (1, 90)
}
