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
RUSTC=/usr/bin/rustc
CARGO=/usr/bin/cargo
WASM_LD=/usr/bin/wasm-ld-14
RUST_SRC=/usr/lib/rustlib/src/rust
FILES=(kasane_web.js kasane_web_bg.wasm)

die() { echo "web/build.sh: error: $*" >&2; exit 1; }
note() { echo "web/build.sh: $*"; }

# The wasm-bindgen crate's version in Cargo.lock: the CLI must be exactly this one.
bindgen_version() {
    awk '/^name = "wasm-bindgen"$/ {getline; gsub(/version = |"/, ""); print; exit}' "$repo/Cargo.lock"
}

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

ensure_toolchain() {
    local missing=() p sudo=()
    for p in "${APT_PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    if ((${#missing[@]})); then
        note "installing ${missing[*]} with apt-get"
        "${sudo[@]}" apt-get update -qq >/dev/null || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null \
            || die "apt-get install ${APT_PACKAGES[*]} failed"
    fi
    local want
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
    for p in "${APT_PACKAGES[@]}"; do
        printf '%s %s\n' "$p" "$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo 'not-installed')"
    done
}

# build OUT TARGET_DIR: builds the module and its glue into OUT.
build() {
    local out="$1" target="$2" cargo_home rust_src_real rustc_hash f flags=""
    cargo_home="$(cd "${CARGO_HOME:-$HOME/.cargo}" 2>/dev/null && pwd -P || echo "${CARGO_HOME:-$HOME/.cargo}")"
    mkdir -p "$out" "$target"
    target="$(cd "$target" && pwd -P)"
    rust_src_real="$(readlink -f "$RUST_SRC")"
    rustc_hash="$("$RUSTC" -vV | awk '/^commit-hash:/ {print $2}')"
    # Later prefixes win when several match (the target dir may sit inside the repository).
    for f in "--remap-path-prefix=$cargo_home=/cargo" "--remap-path-prefix=$RUST_SRC=/rustc/$rustc_hash" \
             "--remap-path-prefix=$rust_src_real=/rustc/$rustc_hash" "--remap-path-prefix=$repo=/kasane" \
             "--remap-path-prefix=$target=/kasane-target"; do
        flags+="\"$f\", "
    done
    local locked=()
    [[ $mode == check ]] && locked=(--locked)
    note "cargo build (target dir $target)"
    (
        cd "$here"
        unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS RUSTC_WRAPPER CARGO_BUILD_RUSTC_WRAPPER \
              RUSTC_WORKSPACE_WRAPPER CARGO_PROFILE_RELEASE_DEBUG CARGO_INCREMENTAL
        RUSTC_BOOTSTRAP=1 RUSTC="$RUSTC" CARGO_TARGET_DIR="$target" "$CARGO" build --release --quiet "${locked[@]}" \
            --package kasane-web --target wasm32-unknown-unknown -Z build-std=std,panic_abort \
            --config 'profile.release.debug = false' \
            --config "target.wasm32-unknown-unknown.rustflags = [ $flags ]"
    ) || die "cargo build failed"
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
toolchain_differs=0
if [[ ! -f $dist/TOOLCHAIN ]] || ! diff -u "$dist/TOOLCHAIN" <(toolchain_info) > "$work/toolchain.diff"; then
    toolchain_differs=1
fi
build "$work/out" "$work/target"
note "built (clean) in $work/out:"
sizes "$work/out"
if ((toolchain_differs)); then
    echo "web/build.sh --check: the installed toolchain is NOT the one recorded in dist/TOOLCHAIN,"
    echo "so the bytes cannot be expected to match: everything was built, nothing was compared."
    [[ -s $work/toolchain.diff ]] && cat "$work/toolchain.diff"
    exit 0
fi
fail=0
for f in "${FILES[@]}"; do
    want="$(awk -v f="$f" '$2 == f || $2 == "*"f {print $1}' "$dist/SHA256SUMS")"
    got="$(sha256sum "$work/out/$f" | cut -d' ' -f1)"
    if [[ $got != "$want" ]]; then
        echo "DIFFERENT: $f rebuilt to $got, dist/SHA256SUMS says ${want:-nothing}"
        fail=1
    elif ! cmp -s "$work/out/$f" "$dist/$f"; then
        echo "DIFFERENT: $f matches SHA256SUMS but not the committed dist/$f"
        fail=1
    else
        echo "identical: $f $got"
    fi
done
((fail == 0)) || { echo "web/build.sh --check: FAILED (see above)"; exit 1; }
echo "web/build.sh --check: the client module and its glue are byte-identical to dist/SHA256SUMS"
