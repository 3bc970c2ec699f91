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

RUSTC=/usr/bin/rustc
CARGO=/usr/bin/cargo
CLANG=/usr/bin/clang
WASM_LD=/usr/bin/wasm-ld-14
WASI_SYSROOT_INC=/usr/include/wasm32-wasi
WASI_SYSROOT_LIB=/usr/lib/wasm32-wasi
RUST_SRC=/usr/lib/rustlib/src/rust

die() { echo "build.sh: error: $*" >&2; exit 1; }
note() { echo "build.sh: $*"; }

# --- (a) toolchain ---------------------------------------------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

ensure_toolchain() {
    local missing=()
    for p in "${APT_PACKAGES[@]}"; do installed "$p" || missing+=("$p"); done
    if ((${#missing[@]})); then
        note "installing ${missing[*]} with apt-get"
        local sudo=()
        [[ $(id -u) -eq 0 ]] || sudo=(sudo)
        "${sudo[@]}" apt-get update -qq >/dev/null || die "apt-get update failed"
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${APT_PACKAGES[@]}" >/dev/null \
            || die "apt-get install ${APT_PACKAGES[*]} failed"
    fi
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
    for p in "${APT_PACKAGES[@]}" $llvm_pkg; do
        printf '%s %s\n' "$p" "$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo 'not-installed')"
    done
}

# --- (b) build ---------------------------------------------------------------------------------
# build_all OUT TARGET_DIR: builds every module into OUT/<name>.wasm.
build_all() {
    local out="$1" target="$2" cargo_home
    cargo_home="$(cd "${CARGO_HOME:-$HOME/.cargo}" 2>/dev/null && pwd -P || echo "${CARGO_HOME:-$HOME/.cargo}")"
    mkdir -p "$out" "$target"
    target="$(cd "$target" && pwd -P)"

    # Later prefixes win when several match (the target dir may sit inside the repository).
    local rust_src_real rustc_hash
    rust_src_real="$(readlink -f "$RUST_SRC")"
    rustc_hash="$("$RUSTC" -vV | awk '/^commit-hash:/ {print $2}')"
    local remap=(
        "--remap-path-prefix=$cargo_home=/cargo"
        "--remap-path-prefix=$RUST_SRC=/rustc/$rustc_hash"
        "--remap-path-prefix=$rust_src_real=/rustc/$rustc_hash"
        "--remap-path-prefix=$repo=/kasane"
        "--remap-path-prefix=$target=/kasane-target"
    )
    local flags="" f
    for f in "${remap[@]}"; do flags+="\"$f\", "; done

    local locked=()
    [[ $mode == check ]] && locked=(--locked)
    note "cargo build (target dir $target)"
    (
        cd "$here"
        # Only the flags below and .cargo/config.toml reach rustc.
        unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS RUSTC_WRAPPER CARGO_BUILD_RUSTC_WRAPPER \
              RUSTC_WORKSPACE_WRAPPER CARGO_PROFILE_RELEASE_DEBUG CARGO_INCREMENTAL
        RUSTC_BOOTSTRAP=1 RUSTC="$RUSTC" CARGO_TARGET_DIR="$target" "$CARGO" build --release --quiet "${locked[@]}" \
            --target wasm32-unknown-unknown -Z build-std=core,alloc,panic_abort \
            --config "target.wasm32-unknown-unknown.rustflags = [ $flags ]" \
            "${RUST_MODULES[@]/#/--package=}"
    ) || die "cargo build failed"
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

toolchain_differs=0
if [[ ! -f $dist/TOOLCHAIN ]]; then
    note "dist/TOOLCHAIN is missing"
    toolchain_differs=1
elif ! diff -u "$dist/TOOLCHAIN" <(toolchain_info) > "$work/toolchain.diff"; then
    toolchain_differs=1
fi

build_all "$work/out" "$work/target"
note "built (clean) in $work/out:"
print_sizes "$work/out"

if ((toolchain_differs)); then
    echo
    echo "build.sh --check: the installed toolchain is NOT the one recorded in dist/TOOLCHAIN,"
    echo "so the bytes cannot be expected to match: everything was built, nothing was compared."
    [[ -s $work/toolchain.diff ]] && cat "$work/toolchain.diff"
    exit 0
fi

[[ -f $dist/SHA256SUMS ]] || die "dist/SHA256SUMS is missing"
fail=0
declare -A expected=()
while read -r sum file; do expected["${file#\*}"]="$sum"; done < "$dist/SHA256SUMS"
for m in $(all_modules); do
    got="$(sha256sum "$work/out/$m.wasm" | cut -d' ' -f1)"
    want="${expected[$m.wasm]:-}"
    if [[ -z $want ]]; then
        echo "DIFFERENT: $m.wasm is not listed in dist/SHA256SUMS (rebuilt: $got)"
        fail=1
    elif [[ $got != "$want" ]]; then
        echo "DIFFERENT: $m.wasm rebuilt to $got, dist/SHA256SUMS says $want"
        fail=1
    elif ! cmp -s "$work/out/$m.wasm" "$dist/$m.wasm"; then
        echo "DIFFERENT: $m.wasm matches SHA256SUMS but not the committed dist/$m.wasm"
        fail=1
    else
        echo "identical: $m.wasm $got"
    fi
    unset "expected[$m.wasm]"
done
for f in "${!expected[@]}"; do
    echo "DIFFERENT: dist/SHA256SUMS lists $f, which no module builds"
    fail=1
done
if ((fail)); then
    echo "build.sh --check: FAILED, the rebuilt modules differ from dist/ (see above)"
    exit 1
fi
echo "build.sh --check: all $(all_modules | wc -l) modules are byte-identical to dist/SHA256SUMS"
