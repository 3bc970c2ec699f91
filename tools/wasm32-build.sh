# What guest-transforms/build.sh and web/build.sh share: Debian's wasm32 toolchain installed
# with apt, a cargo build whose bytes do not depend on where the repository is checked out,
# and the --check comparison against a committed dist/. Sourced, not run: the caller sets
# `prog` (its name in messages), `mode` (build or check), `repo` (the repository root) and
# `dist` (its committed output folder).
#
# rustup here has the host target only, so wasm32 code builds with Debian's rustc-web and
# -Z build-std (under RUSTC_BOOTSTRAP=1); see guest-transforms/README.md, "Reproducibility".

RUSTC=/usr/bin/rustc
CARGO=/usr/bin/cargo
WASM_LD=/usr/bin/wasm-ld-14
RUST_SRC=/usr/lib/rustlib/src/rust

die() { echo "$prog: error: $*" >&2; exit 1; }
note() { echo "$prog: $*"; }

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

# ensure_packages PKG...: installs with apt-get every package not installed yet.
ensure_packages() {
    local missing=() p sudo=()
    for p in "$@"; do installed "$p" || missing+=("$p"); done
    ((${#missing[@]})) || return 0
    note "installing ${missing[*]} with apt-get"
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq >/dev/null || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@" >/dev/null \
        || die "apt-get install $* failed"
}

# package_versions PKG...: one "name version" line each (dist/TOOLCHAIN's dpkg section).
package_versions() {
    local p
    for p in "$@"; do
        printf '%s %s\n' "$p" "$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || echo 'not-installed')"
    done
}

# cargo_wasm32 CRATE_DIR TARGET_DIR ARGS...: `cargo build --release` for wasm32 in CRATE_DIR
# with ARGS, every absolute path that can reach the bytes (cargo registry, Rust sources,
# repository, target dir) remapped to a fixed name. Only these flags and the crate's own
# .cargo/config.toml reach rustc; under --check, Cargo.lock must be up to date.
cargo_wasm32() {
    local dir="$1" target="$2" cargo_home rust_src_real rustc_hash f flags="" locked=()
    shift 2
    cargo_home="$(cd "${CARGO_HOME:-$HOME/.cargo}" 2>/dev/null && pwd -P || echo "${CARGO_HOME:-$HOME/.cargo}")"
    rust_src_real="$(readlink -f "$RUST_SRC")"
    rustc_hash="$("$RUSTC" -vV | awk '/^commit-hash:/ {print $2}')"
    # Later prefixes win when several match (the target dir may sit inside the repository).
    for f in "--remap-path-prefix=$cargo_home=/cargo" "--remap-path-prefix=$RUST_SRC=/rustc/$rustc_hash" \
             "--remap-path-prefix=$rust_src_real=/rustc/$rustc_hash" "--remap-path-prefix=$repo=/kasane" \
             "--remap-path-prefix=$target=/kasane-target"; do
        flags+="\"$f\", "
    done
    [[ $mode == check ]] && locked=(--locked)
    note "cargo build (target dir $target)"
    (
        cd "$dir"
        unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS RUSTC_WRAPPER CARGO_BUILD_RUSTC_WRAPPER \
              RUSTC_WORKSPACE_WRAPPER CARGO_PROFILE_RELEASE_DEBUG CARGO_INCREMENTAL
        RUSTC_BOOTSTRAP=1 RUSTC="$RUSTC" CARGO_TARGET_DIR="$target" "$CARGO" build --release --quiet "${locked[@]}" \
            --target wasm32-unknown-unknown --config "target.wasm32-unknown-unknown.rustflags = [ $flags ]" "$@"
    ) || die "cargo build failed"
}

# toolchain_differs WORK: whether the installed toolchain (`toolchain_info`, the caller's) is
# not the one dist/TOOLCHAIN records; the difference is left in WORK/toolchain.diff.
toolchain_differs() {
    [[ ! -f $dist/TOOLCHAIN ]] && { note "dist/TOOLCHAIN is missing"; return 0; }
    ! diff -u "$dist/TOOLCHAIN" <(toolchain_info) > "$1/toolchain.diff"
}

# say_toolchain_differs WORK: why nothing was compared.
say_toolchain_differs() {
    echo
    echo "$prog --check: the installed toolchain is NOT the one recorded in dist/TOOLCHAIN,"
    echo "so the bytes cannot be expected to match: everything was built, nothing was compared."
    [[ -s $1/toolchain.diff ]] && cat "$1/toolchain.diff"
    return 0
}

# compare_with_dist OUT FILE...: each FILE rebuilt in OUT against dist/SHA256SUMS and the
# committed dist/FILE, and nothing listed that was not rebuilt. Fails on any difference.
compare_with_dist() {
    local out="$1" f got want fail=0
    shift
    [[ -f $dist/SHA256SUMS ]] || die "dist/SHA256SUMS is missing"
    declare -A expected=()
    while read -r want f; do expected["${f#\*}"]="$want"; done < "$dist/SHA256SUMS"
    for f in "$@"; do
        got="$(sha256sum "$out/$f" | cut -d' ' -f1)"
        want="${expected[$f]:-}"
        if [[ -z $want ]]; then
            echo "DIFFERENT: $f is not listed in dist/SHA256SUMS (rebuilt: $got)"
            fail=1
        elif [[ $got != "$want" ]]; then
            echo "DIFFERENT: $f rebuilt to $got, dist/SHA256SUMS says $want"
            fail=1
        elif ! cmp -s "$out/$f" "$dist/$f"; then
            echo "DIFFERENT: $f matches SHA256SUMS but not the committed dist/$f"
            fail=1
        else
            echo "identical: $f $got"
        fi
        unset "expected[$f]"
    done
    for f in "${!expected[@]}"; do
        echo "DIFFERENT: dist/SHA256SUMS lists $f, which nothing builds"
        fail=1
    done
    ((fail == 0)) || { echo "$prog --check: FAILED, the rebuilt files differ from dist/ (see above)"; return 1; }
}
