#!/usr/bin/env bash
# Incremental checkpoints (`ckpt --incremental`), part of `make bench`
# (bench/run.sh runs it; it also runs alone: bash bench/incremental.sh).
#
# The subject, demo/incr, holds INCR_MIB MiB of state (default 4096) and,
# for each line it reads, rewrites 2% of it in CHUNK-sized pieces at random
# places. Under `ckpt --continue --incremental`, in one run: the first
# checkpoint (a full image: the baseline), then REPS times a step and a
# checkpoint (a delta); the figure is the median delta against the full
# one, each as the capture library reports it (signal to image on disk,
# fsync included). Twice: 2% as 64 KiB pieces (the delta's unit), and 2%
# as single 4 KiB pages scattered everywhere (the worst case for 64 KiB
# extents: about 28% of them have a page written).
set -euo pipefail

cd "$(dirname "$0")/.."
REPS=${REPS:-3}
INCR_MIB=${INCR_MIB:-4096}
INCR=demo/bin/incr
for f in ckpt restart libckpt.so "$INCR"; do
    [[ -e $f ]] || { echo "bench: $f is missing: run make first" >&2; exit 1; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-bench-incr.XXXXXX")
PID=
cleanup() {
    [[ -n $PID ]] && kill -9 "$PID" 2>/dev/null
    exec 4>&- 2>/dev/null || true
    rm -rf "$T"
}
trap cleanup EXIT

die() { echo "bench: $*" >&2; exit 1; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "inf" }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
row() { printf '%-44s %12s %12s %10s %8s %6s\n' "$@"; }

# wait_lines N FILE REGEX: until FILE has N lines matching REGEX (5 min at most).
wait_lines() {
    local i
    for ((i = 0; i < 30000; i++)); do
        [[ $(grep -c "$3" "$2" 2>/dev/null || true) -ge $1 ]] && return 0
        sleep 0.01
    done
    return 1
}

# The time of the n-th "checkpoint written" line of FILE, in ms, and the
# size it reports ("(66.8 MiB in 199.3 ms; ...").
written_ms() { grep 'checkpoint written' "$2" | sed -n "${1}p" | sed -E 's/.* in ([0-9.]+) (ms|s);.*/\1 \2/' |
    awk '{ print ($2 == "s") ? $1 * 1000 : $1 }'; }

# incremental_case CHUNK_KIB: sets FULL_MS, DELTA_MS, FULL_BYTES, DELTA_BYTES.
incremental_case() {
    local img=$T/incr.dat n=0 i d=() b=()
    rm -f "$T"/incr.dat* "$T/out" "$T/err" "$T/in"
    mkfifo "$T/in"
    ./ckpt --continue --incremental -o "$img" "$INCR" "$INCR_MIB" "$1" fast <"$T/in" >"$T/out" 2>"$T/err" &
    PID=$!
    exec 4>"$T/in"
    wait_lines 1 "$T/out" '^state ' || die "incr did not start: $(cat "$T/err")"
    kill -USR2 "$PID"
    wait_lines 1 "$T/err" 'checkpoint written' || die "no full checkpoint: $(cat "$T/err")"
    FULL_MS=$(written_ms 1 "$T/err")
    FULL_BYTES=$(stat -c %s "$img")
    for ((i = 1; i <= REPS; i++)); do
        echo "line $i" >&4
        wait_lines "$i" "$T/out" '^step ' || die "incr did not take step $i: $(cat "$T/err")"
        kill -USR2 "$PID"
        wait_lines $((i + 1)) "$T/err" 'checkpoint written' || die "no delta $i: $(cat "$T/err")"
        d+=("$(written_ms $((i + 1)) "$T/err")")
        b+=("$(stat -c %s "$img")")
    done
    exec 4>&-
    wait "$PID" || true
    PID=
    DELTA_MS=$(median "${d[@]}")
    DELTA_BYTES=$(median "${b[@]}")
    ./readckpt --verify "$img" >/dev/null || die "the last delta does not verify"
    rm -f "$T"/incr.dat*
}

incremental_case 64
C_FULL=$FULL_MS C_DELTA=$DELTA_MS C_FB=$FULL_BYTES C_DB=$DELTA_BYTES
incremental_case 4
S_FULL=$FULL_MS S_DELTA=$DELTA_MS S_FB=$FULL_BYTES S_DB=$DELTA_BYTES

verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v + 0 >= t + 0) ? "PASS" : "MISS" }'; }
row "--incremental, $INCR_MIB MiB, 2% rewritten" "delta" "full" "speedup" "target" ""
r=$(ratio "$C_FULL" "$C_DELTA")
row "  as 64 KiB pieces: checkpoint, ms" "$C_DELTA" "$C_FULL" "${r}x" ">=20x" "$(verdict "$r" 20)"
row "    image, MiB" "$(mib "$C_DB")" "$(mib "$C_FB")" "" "" ""
r=$(ratio "$S_FULL" "$S_DELTA")
row "  as 4 KiB pages: checkpoint, ms" "$S_DELTA" "$S_FULL" "${r}x" "" ""
row "    image, MiB" "$(mib "$S_DB")" "$(mib "$S_FB")" "" "" ""
