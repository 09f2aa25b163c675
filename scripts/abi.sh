#!/usr/bin/env bash
# libich's ABI baseline (libabigail's abidw/abidiff, Debian's abigail-tools).
#
#   scripts/abi.sh check   [BUILD_DIR]  compare BUILD_DIR/libich/libich.so.0
#                                       (default build/) with abi/libich.so.0.abi;
#                                       exit 1 on any incompatible change
#   scripts/abi.sh update  [BUILD_DIR]  write abi/libich.so.0.abi from the build:
#                                       on purpose only, and commit it
#
# Only the types of the public headers (include/ich) count: abidw and
# abidiff are given that folder, so an internal struct may change freely.
# The build must be RelWithDebInfo (scripts/build.sh), whose DWARF abidw
# reads.
#
# check fails on any change abidiff finds in what the baseline exports: a
# function removed or its signature changed, a field inserted, removed,
# moved or retyped in a public struct (these break programs built against
# the old headers), but also a field appended to a struct, which the size
# protocol (README.md, "ABI") makes compatible and abidiff cannot tell
# apart. So: undo an incompatible change (append fields instead), or raise
# the SONAME when the break is meant; and after a reviewed change (an
# appended field, a new SONAME) run `scripts/abi.sh update` and commit the
# baseline. New functions alone pass (abidiff --no-added-syms).
set -euo pipefail
cd "$(dirname "$0")/.."
command=${1:-check}
build=${2:-build}
library="$build/libich/libich.so.0"
baseline=abi/libich.so.0.abi
[ -f "$library" ] || { echo "abi.sh: $library not built (scripts/build.sh $build)" >&2; exit 2; }
command -v abidw >/dev/null || { echo "abi.sh: abidw not found (apt-get install abigail-tools)" >&2; exit 2; }

# Source locations are kept: abidiff needs them to tell the public headers'
# types from internal ones. The tree's own path is cut from them, so that
# the baseline does not depend on where it was built (abidiff compares
# types, not paths).
abidw_options=(--headers-dir include/ich --drop-private-types --no-corpus-path
               --no-comp-dir-path)

case "$command" in
update)
  mkdir -p abi
  abidw "${abidw_options[@]}" --out-file "$baseline.tmp" "$library"
  # the tree's own path out of every file path (translation units too)
  sed -E "s#(file)?path='$PWD/#\1path='#g" "$baseline.tmp" > "$baseline"
  rm -f "$baseline.tmp"
  echo "abi.sh: wrote $baseline from $library; review and commit it"
  ;;
check)
  [ -f "$baseline" ] || { echo "abi.sh: no $baseline (scripts/abi.sh update)" >&2; exit 2; }
  status=0
  abidiff --headers-dir2 include/ich --drop-private-types --no-added-syms \
    "$baseline" "$library" || status=$?
  # abidiff's status is a bit field: 1 error, 2 usage, 4 ABI change,
  # 8 incompatible ABI change.
  if [ $((status & 3)) -ne 0 ]; then
    echo "abi.sh: abidiff failed (status $status)" >&2
    exit 1
  fi
  if [ $((status & 12)) -ne 0 ]; then
    echo "abi.sh: ABI change against $baseline (see above)." >&2
    echo "  Undo it (append struct fields, never insert), or raise the SONAME when the break" >&2
    echo "  is meant; after review, 'scripts/abi.sh update' and commit the baseline." >&2
    exit 1
  fi
  echo "abi.sh: no ABI change against $baseline"
  ;;
*)
  echo "usage: scripts/abi.sh check|update [BUILD_DIR]" >&2
  exit 2
  ;;
esac
