#!/usr/bin/env bash
# Builds the browser client's module (crate kasane-web, wasm32) and its wasm-bindgen glue into
# dist/, and checks that the build is reproducible. The host embeds dist/ and page/ and serves
# them at /web/, so `cargo build` never needs this toolchain.
#
#   build.sh           install the toolchain if missing, build, write dist/kasane_web_bg.wasm,
#                      dist/kasane_web.js, dist/SHA256SUMS and dist/TOOLCHAIN
#   build.sh --check   build from a clean state (fresh target dir) into a temporary folder and
#                      compare the bytes with dist/SHA256SUMS; exit 1 on any difference. If the
#                      installed toolchain is not the one in dist/TOOLCHAIN, say so, build
#                      anyway, compare nothing, exit 0.
#
# Toolchain: Debian's rustc-web with -Z build-std (rustup here has the host target only), lld
# 14's wasm-ld, and wasm-bindgen-cli at exactly the version of the wasm-bindgen crate in
# Cargo.lock (installed with cargo install if missing). Paths are remapped as for the guests.
set -euo pipefail
export LC_ALL=C

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
repo="$(cd "$here/.." && pwd -P)"
dist="$here/dist"

mode=build
case "${1:-}" in
    "") ;;
    --check) mode=check ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

APT_PACKAGES=(rustc-web cargo-web rust-web-src rust-web-llvm lld)
FILES=(kasane_web.js kasane_web_bg.wasm)

prog=web/build.sh
# shellcheck source=../tools/wasm32-build.sh
source "$repo/tools/wasm32-build.sh"

# The wasm-bindgen crate's version in Cargo.lock: the CLI must be exactly this one.
bindgen_version() {
    awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' "$repo/Cargo.lock"
}

ensure_toolchain() {
    local want p
    ensure_packages "${APT_PACKAGES[@]}"
    want="$(bindgen_version)"
    [[ -n $want ]] || die "no wasm-bindgen in Cargo.lock"
    if [[ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$want" ]]; then
        note "installing wasm-bindgen-cli $want with cargo install"
        cargo install --quiet wasm-bindgen-cli --version "=$want" || die "cargo install wasm-bindgen-cli failed"
    fi
    for p in "$RUSTC" "$CARGO" "$WASM_LD" "$RUST_SRC/library/std"; do
        [[ -e $p ]] || die "$p is missing after installing ${APT_PACKAGES[*]}"
    done
}

# Every version that can change the bytes; --check compares bytes only when this matches.
toolchain_info() {
    echo "# Toolchain that built dist/ (written by build.sh; --check compares bytes only under it)"
    echo "## $RUSTC -vV"
    "$RUSTC" -vV
    echo "## $CARGO -V"
    "$CARGO" -V
    echo "## $WASM_LD --version"
    "$WASM_LD" --version | head -n 1
    echo "## wasm-bindgen --version"
    wasm-bindgen --version
    echo "## dpkg"
    package_versions "${APT_PACKAGES[@]}"
}

# build OUT TARGET_DIR: builds the module and its glue into OUT.
build() {
    local out="$1" target="$2"
    mkdir -p "$out" "$target"
    target="$(cd "$target" && pwd -P)"
    cargo_wasm32 "$here" "$target" --package kasane-web -Z build-std=std,panic_abort \
        --config 'profile.release.debug = false'
    note "wasm-bindgen"
    wasm-bindgen --target no-modules --no-typescript --out-dir "$out" \
        "$target/wasm32-unknown-unknown/release/kasane_web.wasm" || die "wasm-bindgen failed"
}

sizes() {
    local f
    for f in "${FILES[@]}"; do
        printf '  %-20s %8d bytes  %s\n' "$f" "$(stat -c %s "$1/$f")" "$(sha256sum "$1/$f" | cut -c1-16)"
    done
}

ensure_toolchain

if [[ $mode == build ]]; then
    mkdir -p "$dist"
    build "$dist" "$repo/target/web"
    (cd "$dist" && sha256sum "${FILES[@]}" > SHA256SUMS)
    toolchain_info > "$dist/TOOLCHAIN"
    note "built into $dist:"
    sizes "$dist"
    exit 0
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/kasane-web-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT
differs=0
toolchain_differs "$work" && differs=1
build "$work/out" "$work/target"
note "built (clean) in $work/out:"
sizes "$work/out"
if ((differs)); then
    say_toolchain_differs "$work"
    exit 0
fi
compare_with_dist "$work/out" "${FILES[@]}" || exit 1
echo "web/build.sh --check: the client module and its glue are byte-identical to dist/SHA256SUMS"
