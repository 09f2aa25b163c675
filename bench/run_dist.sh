#!/usr/bin/env bash
# Benchmark: data-parallel training (issue 17). ich-train on the same
# images, the same global batch and seed, as 1 rank x 2 threads (one
# process, threads inside the layers) and 2 ranks x 1 thread (mpirun, each
# rank half of every batch, one gradient allreduce per step), and as 1
# rank x 1 thread for the classic efficiency. Prints training images/s per
# setup (medians over interleaved repetitions) and the scaling efficiency.
# See bench/README.md ("Data-parallel training").
#
#   bench/run_dist.sh [--model M] [--patients P] [--epochs E] [--repeat R] [--quick] [BUILD_DIR]
#
# --model M     ich-train's --model (default ichnet, 3x256x256)
# --patients P  phantom patients of 16 slices each (default 6: 96 images)
# --epochs E    epochs per run; the first is warm-up, the others are timed
#               (default 3)
# --repeat R    repetitions of the three setups, interleaved (default 3)
# --quick       a smoke test: 2 patients, 2 epochs, 1 repetition
#
# BUILD_DIR (or $ICH_BUILD_DIR, default build) must hold a finished build
# with examples/ich-train and libich/libich-mpi.so; mpirun (Debian's
# openmpi-bin) must be installed. The images are written as PNG first
# (ich-preprocess), so that loading costs little beside the network; one
# loading thread per rank. Timings are each run's history.csv "seconds" of
# the timed epochs (rank 0's wall time, allreduce waits included).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
model=ichnet patients=6 epochs=3 repeat=3 build=
die() { echo "run_dist.sh: $*" >&2; exit 1; }
usage() { sed -n '10,17p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
while (($#)); do
    case $1 in
    --model) (($# >= 2)) || usage; model=$2; shift 2 ;;
    --patients) (($# >= 2)) || usage; patients=$2; shift 2 ;;
    --epochs) (($# >= 2)) || usage; epochs=$2; shift 2 ;;
    --repeat) (($# >= 2)) || usage; repeat=$2; shift 2 ;;
    --quick) patients=2 epochs=2 repeat=1; shift ;;
    -h | --help) sed -n '10,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) usage ;;
    *) [[ -z $build ]] || usage; build=$1; shift ;;
    esac
done
for n in "$patients" "$epochs" "$repeat"; do [[ $n =~ ^[0-9]+$ ]] && ((n >= 1)) || usage; done
((epochs >= 2)) || die "--epochs must be at least 2 (the first is not timed)"
build=${build:-${ICH_BUILD_DIR:-build}}
[[ -d $build ]] || build="$root/$build"
build=$(cd "$build" && pwd) || die "no build folder"
train="$build/examples/ich-train"
[[ -x $train ]] || die "$train not built"
[[ -f $build/libich/libich-mpi.so ]] || die "$build/libich/libich-mpi.so not built (libopenmpi-dev)"
command -v mpirun >/dev/null || die "mpirun not found (Debian: openmpi-bin)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
unset ICH_DIST OMPI_COMM_WORLD_SIZE PMI_SIZE PMIX_RANK SLURM_STEP_NUM_TASKS

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build/examples/ich-phantom" "$work/phantom" --patients "$patients" --slices 16 --size 256 \
    --seed 1 --quiet
"$build/examples/ich-preprocess" "$work/phantom/images" "$work/png" --size 256 --quiet
images=$(find "$work/png" -name '*.png' | wc -l)

# One run: images/s of its timed epochs (the median epoch).
run() { # label ranks threads
    local out="$work/run-$1"
    local cmd=("$train" "$work/phantom/labels.csv" "$work/png" --model "$model"
               --epochs "$epochs" --batch-size 16 --threads "$3" --workers 1 --seed 0
               --patience 0 --out "$out" --quiet)
    rm -rf "$out"
    if (($2 > 1)); then
        mpirun -np "$2" --oversubscribe --bind-to none "${cmd[@]}" >/dev/null
    else
        "${cmd[@]}" >/dev/null
    fi
    awk -F, -v n="$images" 'NR > 2 {print n / $7}' "$out/history.csv" | sort -g |
        awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

declare -a one_two=() two_one=() one_one=()
echo "data-parallel training: $model, $images images (PNG), batch 16, $epochs epochs" \
     "(the first untimed), $repeat repetition(s); $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= repeat; r++)); do
    # interleaved, the order turned each repetition, so that every setup
    # sees the machine's other load alike on average
    if ((r % 2)); then order=(1x2 2x1 1x1); else order=(1x1 2x1 1x2); fi
    for setup in "${order[@]}"; do
        case $setup in
        1x2) v=$(run 1x2 1 2); one_two+=("$v") ;;
        2x1) v=$(run 2x1 2 1); two_one+=("$v") ;;
        1x1) v=$(run 1x1 1 1); one_one+=("$v") ;;
        esac
        printf '  repetition %d: %s %8.2f images/s\n' "$r" "$setup" "$v"
    done
done
a=$(median "${one_two[@]}") b=$(median "${two_one[@]}") c=$(median "${one_one[@]}")
printf '\n%-28s %10s\n' setup "images/s"
printf '%-28s %10.2f\n' "1 rank x 1 thread" "$c" "1 rank x 2 threads" "$a" "2 ranks x 1 thread" "$b"
awk -v a="$a" -v b="$b" -v c="$c" 'BEGIN {
    printf "\nscaling efficiency, 2 ranks x 1 thread / (2 x 1 rank x 1 thread): %.2f\n", b / (2 * c)
    printf "2 ranks x 1 thread / 1 rank x 2 threads (the same two cores):      %.2f\n", b / a }'
echo "(medians; this machine is shared with other jobs: its load moves these figures)"
