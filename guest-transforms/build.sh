#!/usr/bin/env bash
# Builds every guest module into dist/ and checks that the build is reproducible.
#
#   build.sh           install the toolchain if missing, build every module, write
#                      dist/<name>.wasm, dist/SHA256SUMS and dist/TOOLCHAIN
#   build.sh --check   build everything from a clean state (fresh target dir) into a
#                      temporary folder and compare the bytes with dist/SHA256SUMS; exit 1
#                      on any difference. If the installed toolchain is not the one in
#                      dist/TOOLCHAIN, say so, build anyway, compare nothing, exit 0.
#
# The bytes must not depend on where the repository is checked out: every absolute path
# that can reach a module (repository, cargo registry, Rust sources, target dir) is remapped
# to a fixed name. See README.md, "Reproducibility".
set -euo pipefail
export LC_ALL=C

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
repo="$(cd "$here/.." && pwd -P)"
dist="$here/dist"

mode=build
case "${1:-}" in
    "") ;;
    --check) mode=check ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

# Module names (dist/<name>.wasm). A Rust module is the crate transforms/<name>, whose cdylib
# is <name with _>.wasm; a C module is the folder c/<name>.
RUST_MODULES=(sha256-chain hmac-sha256 blake2s-keyed pbkdf2-sha256 ocra)
C_MODULES=(sha256-wasi-c)
APT_PACKAGES=(rustc-web cargo-web rust-web-src rust-web-llvm clang lld wasi-libc libclang-rt-14-dev-wasm32)

prog=build.sh
# shellcheck source=../tools/wasm32-build.sh
source "$repo/tools/wasm32-build.sh"
CLANG=/usr/bin/clang
WASI_SYSROOT_INC=/usr/include/wasm32-wasi
WASI_SYSROOT_LIB=/usr/lib/wasm32-wasi

# --- (a) toolchain ---------------------------------------------------------------------------
ensure_toolchain() {
    ensure_packages "${APT_PACKAGES[@]}"
    for f in "$RUSTC" "$CARGO" "$CLANG" "$WASM_LD" "$RUST_SRC/library/core" "$WASI_SYSROOT_LIB/libc.a" \
             "$WASI_SYSROOT_LIB/crt1-reactor.o"; do
        [[ -e $f ]] || die "$f is missing after installing ${APT_PACKAGES[*]}"
    done
}

# Every version that can change the bytes. dist/TOOLCHAIN holds this text for the build that
# produced dist/; --check compares bytes only when it matches exactly.
toolchain_info() {
    echo "# Toolchain that built dist/ (written by build.sh; --check compares bytes only under it)"
    echo "## $RUSTC -vV"
    "$RUSTC" -vV
    echo "## $CARGO -V"
    "$CARGO" -V
    echo "## $CLANG --version"
    "$CLANG" --version | head -n 1
    echo "## $WASM_LD --version"
    "$WASM_LD" --version | head -n 1
    echo "## dpkg"
    local llvm_pkg
    # The LLVM that rustc's driver loads is a separate package (libllvmNN).
    llvm_pkg="$(dpkg -S "$(readlink -f "$(ldd /usr/lib/x86_64-linux-gnu/librustc_driver-*.so 2>/dev/null \
        | awk '/libLLVM/ {print $3; exit}')")" 2>/dev/null | cut -d: -f1 || true)"
    # shellcheck disable=SC2086 # no package, or exactly one
    package_versions "${APT_PACKAGES[@]}" $llvm_pkg
}

# --- (b) build ---------------------------------------------------------------------------------
# build_all OUT TARGET_DIR: builds every module into OUT/<name>.wasm.
build_all() {
    local out="$1" target="$2"
    mkdir -p "$out" "$target"
    target="$(cd "$target" && pwd -P)"
    cargo_wasm32 "$here" "$target" -Z build-std=core,alloc,panic_abort "${RUST_MODULES[@]/#/--package=}"
    local m
    for m in "${RUST_MODULES[@]}"; do
        cp "$target/wasm32-unknown-unknown/release/${m//-/_}.wasm" "$out/$m.wasm"
    done

    for m in "${C_MODULES[@]}"; do
        note "clang $m"
        (
            cd "$here/c/$m"
            # Sorted sources: the link order is part of the bytes.
            mapfile -t srcs < <(ls -1 ./*.c | sort)
            "$CLANG" --target=wasm32-wasi -isystem "$WASI_SYSROOT_INC" -L"$WASI_SYSROOT_LIB" -mexec-model=reactor \
                -O2 -std=c11 -Wall -Wextra -Werror \
                -ffile-prefix-map="$repo=/kasane" -fno-ident \
                -I "$repo/abi/include" \
                -Wl,--strip-all \
                -o "$out/$m.wasm" "${srcs[@]}"
        ) || die "clang failed for $m"
    done
}

all_modules() { printf '%s\n' "${RUST_MODULES[@]}" "${C_MODULES[@]}" | sort; }

print_sizes() {
    local out="$1" m
    for m in $(all_modules); do
        printf '  %-16s %7d bytes  %s\n' "$m" "$(stat -c %s "$out/$m.wasm")" "$(sha256sum "$out/$m.wasm" | cut -c1-16)"
    done
}

# --- main --------------------------------------------------------------------------------------
ensure_toolchain

if [[ $mode == build ]]; then
    mkdir -p "$dist"
    build_all "$dist" "$here/target"
    # (c) checksums (sorted by name) and the toolchain that produced them.
    (cd "$dist" && all_modules | sed 's/$/.wasm/' | xargs sha256sum > SHA256SUMS)
    toolchain_info > "$dist/TOOLCHAIN"
    note "built into $dist:"
    print_sizes "$dist"
    exit 0
fi

# (d) --check: fresh target dir, nothing reused, dist/ left untouched.
work="$(mktemp -d "${TMPDIR:-/tmp}/kasane-guest-check.XXXXXX")"
trap 'rm -rf "$work"' EXIT

differs=0
toolchain_differs "$work" && differs=1

build_all "$work/out" "$work/target"
note "built (clean) in $work/out:"
print_sizes "$work/out"

if ((differs)); then
    say_toolchain_differs "$work"
    exit 0
fi

mapfile -t files < <(all_modules | sed 's/$/.wasm/')
compare_with_dist "$work/out" "${files[@]}" || exit 1
echo "build.sh --check: all $(all_modules | wc -l) modules are byte-identical to dist/SHA256SUMS"
