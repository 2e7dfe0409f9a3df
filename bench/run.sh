#!/usr/bin/env bash
# ckpt benchmark (`make bench`): checkpoint and restart times and image sizes,
# each next to a baseline measured in the same run, in the same directory
# (so on the same file system) as the images. Not a test: it prints a table
# and says PASS or MISS against the targets; it fails only if ckpt does not
# work at all.
#
# Times are taken with bash's $EPOCHREALTIME (no fork), each measurement is
# run 3 times and the median is reported. Page caches are not dropped: the
# images and the dd files are read back warm, alike.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
REPS=${REPS:-3}
MEMTOUCH=$ROOT/demo/bin/memtouch
COMPRESSIBLE=$ROOT/demo/bin/compressible
POPREAD=$ROOT/demo/bin/popread
for f in ckpt restart libckpt.so hello-test "$MEMTOUCH" demo/bin/cpu-dispatch demo/bin/tree-fork demo/bin/pause-gap demo/bin/files-many demo/bin/events-many "$COMPRESSIBLE" "$POPREAD"; do
    [[ -e $f ]] || { echo "bench: $f is missing: run make first" >&2; exit 1; }
done

T=$(mktemp -d "${TMPDIR:-/tmp}/ckpt-bench.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
    rm -rf "$T"
}
trap cleanup EXIT
mkfifo "$T/fifo"

die() { echo "bench: $*" >&2; exit 1; }

# Microseconds of $EPOCHREALTIME (whatever the locale's decimal separator).
usec() { local t=${1//[.,]/}; echo "$t"; }
# Elapsed milliseconds between two $EPOCHREALTIME readings.
ms_between() { awk -v a="$(usec "$1")" -v b="$(usec "$2")" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "inf" }'; }
verdict() { awk -v v="$1" -v t="$2" 'BEGIN { print (v + 0 <= t + 0) ? "PASS" : "MISS" }'; }

# The time the capture library reports on its stderr line (e.g. "12.3 ms"),
# or the whole line if no time is recognised.
preload_time() {
    local line
    line=$(tail -n 1 "$1" 2>/dev/null || true)
    if [[ $line =~ ([0-9]+(\.[0-9]+)?)[[:space:]]*(ms|µs|us|s)([^[:alpha:]]|$) ]]; then
        local v=${BASH_REMATCH[1]} u=${BASH_REMATCH[3]}
        case $u in
            s) awk -v v="$v" 'BEGIN { printf "%.1f", v * 1000 }' ;;
            ms) printf '%s' "$v" ;;
            *) awk -v v="$v" 'BEGIN { printf "%.3f", v / 1000 }' ;;
        esac
    else
        printf '?'
    fi
}

# checkpoint_with IMAGE "CKPT OPTIONS" PROGRAM ARGS...: runs the program
# under ckpt, waits for its first line (ending in "ready"), checkpoints it.
# Sets CK_MS (kill -USR2 to the exit of the ckpt'd process), PRE_MS (what
# the preload printed), SIZE (image bytes).
checkpoint_with() {
    local img=$1 opts=$2 st=0 line t0 t1
    shift 2
    rm -f "$img"
    # shellcheck disable=SC2086
    ./ckpt $opts -o "$img" "$@" >"$T/fifo" 2>"$T/ckpt.err" &
    local pid=$!
    PIDS+=("$pid")
    exec 3<"$T/fifo"
    read -r -t 60 line <&3 || die "$* under ckpt did not get ready: $(cat "$T/ckpt.err")"
    [[ $line == *ready ]] || die "$* printed '$line' instead of ready"
    t0=$EPOCHREALTIME
    kill -USR2 "$pid"
    wait "$pid" || st=$?
    t1=$EPOCHREALTIME
    exec 3<&-
    [[ $st == 99 ]] || die "checkpoint of $* exited with status $st: $(cat "$T/ckpt.err")"
    CK_MS=$(ms_between "$t0" "$t1")
    PRE_MS=$(preload_time "$T/ckpt.err")
    SIZE=$(stat -c %s "$img")
}

# checkpoint_memtouch IMAGE RESERVE TOUCH: memtouch, by checkpoint_with.
checkpoint_memtouch() {
    checkpoint_with "$1" "" "$MEMTOUCH" "$2" "$3"
}

# restart_first_line IMAGE [OPTIONS...]: sets RS_MS, from starting ./restart
# (with OPTIONS) to reading the restarted program's first line; then kills it.
restart_first_line() {
    local img=$1 line t0 t1 st=0
    t0=$EPOCHREALTIME
    ./restart "${@:2}" "$img" >"$T/fifo" 2>"$T/restart.err" &
    local pid=$!
    PIDS+=("$pid")
    exec 3<"$T/fifo"
    read -r -t 60 line <&3 || { exec 3<&-; die "restart of $img printed nothing: $(cat "$T/restart.err")"; }
    t1=$EPOCHREALTIME
    # In namespace mode the program runs under init, restart's child:
    # killing init ends the whole namespace before restart itself ends, so
    # no line of this program reaches the next measurement's reader.
    local init
    init=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null || true)
    kill -9 ${init:-$pid} 2>/dev/null || true
    wait "$pid" 2>/dev/null || st=$?
    exec 3<&-
    [[ $line == tick* ]] || die "restart of $img printed '$line', not a tick"
    RS_MS=$(ms_between "$t0" "$t1")
}

# dd_baseline MIB: sets DDW_MS and DDR_MS, medians of REPS runs.
dd_baseline() {
    local w=() r=() i t0 t1
    for ((i = 0; i < REPS; i++)); do
        rm -f "$T/dd.bin"
        t0=$EPOCHREALTIME
        dd if=/dev/zero of="$T/dd.bin" bs=1M count="$1" conv=fsync status=none
        t1=$EPOCHREALTIME
        w+=("$(ms_between "$t0" "$t1")")
        t0=$EPOCHREALTIME
        dd if="$T/dd.bin" of=/dev/null bs=1M status=none
        t1=$EPOCHREALTIME
        r+=("$(ms_between "$t0" "$t1")")
    done
    rm -f "$T/dd.bin"
    DDW_MS=$(median "${w[@]}")
    DDR_MS=$(median "${r[@]}")
}

# memtouch_case NAME RESERVE TOUCH: medians of REPS checkpoints and restarts.
memtouch_case() {
    local name=$1 ck=() pre=() rs=() size=0 i
    for ((i = 0; i < REPS; i++)); do
        checkpoint_memtouch "$T/$name.dat" "$2" "$3"
        ck+=("$CK_MS")
        pre+=("$PRE_MS")
        size=$SIZE
        restart_first_line "$T/$name.dat"
        rs+=("$RS_MS")
    done
    M_CK=$(median "${ck[@]}")
    M_PRE=$(median "${pre[@]}")
    M_RS=$(median "${rs[@]}")
    M_SIZE=$size
    M_ALLOC=$(($(stat -c %b "$T/$name.dat") * $(stat -c %B "$T/$name.dat")))
    rm -f "$T/$name.dat"
}

# wait_asleep PID: until the process has slept once (its first sleep(1)).
wait_asleep() {
    local i key val state='' vol=0
    for ((i = 0; i < 6000; i++)); do
        state='' vol=0
        while read -r key val _; do
            case $key in
                State:) state=$val ;;
                voluntary_ctxt_switches:) vol=$val ;;
            esac
        done <"/proc/$1/status" || return 1
        [[ $state == S && $vol -ge 1 ]] && return 0
        sleep 0.01
    done
    return 1
}

# elapsed_ms CMD...: the wall time of one run of CMD (output discarded), ms.
elapsed_ms() {
    local t0 t1
    t0=$EPOCHREALTIME
    "$@" >/dev/null 2>&1 || true
    t1=$EPOCHREALTIME
    ms_between "$t0" "$t1"
}

# launch_costs: medians of 5*REPS interleaved runs of /bin/true alone and
# under ckpt, and of a shell running 50 commands (each a member of the
# job) alone, under ckpt and under ckpt --no-tree. Sets L_PLAIN, L_CKPT,
# SH_PLAIN, SH_CKPT, SH_NOTREE.
launch_costs() {
    local lp=() lc=() sp=() sc=() sn=() i
    local script='i=0; while [ $i -lt 50 ]; do /bin/true; i=$((i + 1)); done'
    for ((i = 0; i < 5 * REPS; i++)); do
        lp+=("$(elapsed_ms /bin/true)")
        lc+=("$(elapsed_ms ./ckpt -o "$T/launch.dat" /bin/true)")
        sp+=("$(elapsed_ms /bin/sh -c "$script")")
        sc+=("$(elapsed_ms ./ckpt -o "$T/launch.dat" /bin/sh -c "$script")")
        sn+=("$(elapsed_ms ./ckpt --no-tree -o "$T/launch.dat" /bin/sh -c "$script")")
    done
    L_PLAIN=$(median "${lp[@]}") L_CKPT=$(median "${lc[@]}")
    SH_PLAIN=$(median "${sp[@]}") SH_CKPT=$(median "${sc[@]}") SH_NOTREE=$(median "${sn[@]}")
}

hello_checkpoint() {
    local img=$T/hello.dat st=0 t0 t1
    rm -f "$img"
    ./ckpt -o "$img" ./hello-test >/dev/null 2>"$T/ckpt.err" &
    local pid=$!
    PIDS+=("$pid")
    wait_asleep "$pid" || die "hello-test under ckpt did not start: $(cat "$T/ckpt.err")"
    t0=$EPOCHREALTIME
    kill -USR2 "$pid"
    wait "$pid" || st=$?
    t1=$EPOCHREALTIME
    [[ $st == 99 ]] || die "checkpoint of hello-test exited with status $st: $(cat "$T/ckpt.err")"
    CK_MS=$(ms_between "$t0" "$t1")
    PRE_MS=$(preload_time "$T/ckpt.err")
    SIZE=$(stat -c %s "$img")
}

# wait_for_line REGEX FILE: until a line of FILE matches (30 s at most).
wait_for_line() {
    local w
    for ((w = 0; w < 3000; w++)); do
        grep -q "$1" "$2" 2>/dev/null && return 0
        sleep 0.01
    done
    return 1
}

# threads_checkpoint N: checkpoints threads-count with N threads (small
# memory) once it is running; sets PRE_MS (the preload's own time, from the
# signal to the image written) and CK_MS (kill -USR2 to exit).
threads_checkpoint() {
    local n=$1 img=$T/threads.dat st=0 t0 t1
    # The last run's output goes first: its "round 20" would send the
    # signal before this run's program can take it.
    rm -f "$img" "$T/thr.err"
    ./ckpt -o "$img" demo/bin/threads-count "$n" 100000 >/dev/null 2>"$T/thr.err" &
    local pid=$!
    PIDS+=("$pid")
    wait_for_line '^round 20$' "$T/thr.err" || die "threads-count $n did not start: $(cat "$T/thr.err")"
    t0=$EPOCHREALTIME
    kill -USR2 "$pid"
    wait "$pid" || st=$?
    t1=$EPOCHREALTIME
    [[ $st == 99 ]] || die "checkpoint of threads-count $n exited with status $st: $(cat "$T/thr.err")"
    CK_MS=$(ms_between "$t0" "$t1")
    PRE_MS=$(preload_time "$T/thr.err")
}

# tree_checkpoint N: checkpoints (ckpt --tree) a tree of N small processes
# (tree-fork) once they are all waiting; sets PRE_MS (the root's own time,
# from the signal to the job image renamed into place) and CK_MS (kill -USR2
# to the root's exit).
tree_checkpoint() {
    local n=$1 img=$T/tree.dat st=0 line t0 t1
    rm -f "$img"
    ./ckpt --tree -o "$img" demo/bin/tree-fork "$n" >"$T/fifo" 2>"$T/tree.err" &
    local pid=$!
    PIDS+=("$pid")
    exec 3<"$T/fifo"
    read -r -t 60 line <&3 || die "tree-fork $n under ckpt --tree did not get ready: $(cat "$T/tree.err")"
    t0=$EPOCHREALTIME
    kill -USR2 "$pid"
    wait "$pid" || st=$?
    t1=$EPOCHREALTIME
    exec 3<&-
    [[ $st == 99 ]] || die "tree checkpoint of tree-fork $n exited with status $st: $(cat "$T/tree.err")"
    CK_MS=$(ms_between "$t0" "$t1")
    PRE_MS=$(preload_time "$T/tree.err")
}

# events_checkpoint ARGS...: checkpoints events-many ARGS once it is ready;
# sets PRE_MS (the preload's own time).
events_checkpoint() {
    local img=$T/events.dat st=0
    rm -f "$img" "$T/events.fifo" "$T/ev.err"
    mkfifo "$T/events.fifo"
    ./ckpt -o "$img" demo/bin/events-many "$@" <>"$T/events.fifo" >/dev/null 2>"$T/ev.err" &
    local pid=$!
    PIDS+=("$pid")
    wait_for_line '^events-many: ready$' "$T/ev.err" || die "events-many $* did not start: $(cat "$T/ev.err")"
    kill -USR2 "$pid"
    wait "$pid" || st=$?
    [[ $st == 99 ]] || die "checkpoint of events-many $* exited with status $st: $(cat "$T/ev.err")"
    PRE_MS=$(preload_time "$T/ev.err")
}

# many_fds_restart N: files-many N (N descriptors: files at offsets, dups,
# pipes holding a byte) checkpointed, then restarted to the end of its check
# of every descriptor. Sets MF_MS (restart's start to its exit).
many_fds_restart() {
    local n=$1 img=$T/many.dat st=0 t0 t1
    rm -rf "$img" "$T/many" "$T/many.fifo" "$T/mf.err"
    mkdir "$T/many"
    mkfifo "$T/many.fifo"
    # Its descriptors start at 3: none of the caller's may be inherited.
    (
        for f in /proc/$BASHPID/fd/*; do
            f=${f##*/}
            ((f > 2)) && eval "exec $f>&-"
        done
        exec ./ckpt -o "$img" demo/bin/files-many "$n" "$T/many"
    ) <>"$T/many.fifo" >/dev/null 2>"$T/mf.err" &
    local pid=$!
    PIDS+=("$pid")
    wait_for_line '^files-many: ready$' "$T/mf.err" || die "files-many $n did not start: $(cat "$T/mf.err")"
    kill -USR2 "$pid"
    wait "$pid" || st=$?
    [[ $st == 99 ]] || die "checkpoint of files-many $n exited with status $st: $(cat "$T/mf.err")"
    t0=$EPOCHREALTIME
    echo go | ./restart "$img" >"$T/mf.out" 2>"$T/mf.err" || die "restart of files-many $n failed: $(cat "$T/mf.err")"
    t1=$EPOCHREALTIME
    grep -q "^files-many: $n descriptors checked$" "$T/mf.out" || die "files-many $n after restart: $(cat "$T/mf.out")"
    MF_MS=$(ms_between "$t0" "$t1")
}

# wait_for_count N REGEX FILE: until N lines of FILE match (120 s at most).
wait_for_count() {
    local w c
    for ((w = 0; w < 12000; w++)); do
        c=$(grep -c "$2" "$3" 2>/dev/null || true)
        [[ ${c:-0} -ge $1 ]] && return 0
        sleep 0.01
    done
    return 1
}

# pause_gaps MIB OPTIONS...: runs pause-gap MIB under ckpt --continue
# OPTIONS and checkpoints it REPS times. The pause the program sees is the
# largest gap between two clock readings of its spinning thread in a window
# holding the checkpoint (from the signal until the "written" line); the
# machine's own share is the largest gap in a quiet window of 0.5 s just
# before. Sets PG_CK and PG_QUIET (medians, ms) and PG_PRE (the capture's
# own "paused" figure, median, ms).
pause_gaps() {
    local mib=$1 err=$T/pg.err line i n=0 ck=() quiet=() pre=()
    shift
    rm -f "$T/pg.dat"
    coproc PG { exec ./ckpt --continue "$@" -o "$T/pg.dat" demo/bin/pause-gap "$mib" 2>"$err"; }
    local pid=$PG_PID out=${PG[0]} in=${PG[1]}
    PIDS+=("$pid")
    read -r -t 120 line <&"$out" || die "pause-gap $mib under ckpt did not get ready: $(cat "$err")"
    [[ $line == ready ]] || die "pause-gap printed '$line' instead of ready"
    for ((i = 0; i < REPS; i++)); do
        echo >&"$in"
        read -r -t 60 line <&"$out"
        sleep 0.5
        echo >&"$in"
        read -r -t 60 line <&"$out"
        quiet+=("$(awk -v u="${line#gap }" 'BEGIN { printf "%.1f", u / 1000 }')")
        kill -USR2 "$pid"
        n=$((n + 1))
        wait_for_count "$n" '^ckpt: checkpoint written' "$err" || die "pause-gap $mib $*: no checkpoint line: $(cat "$err")"
        echo >&"$in"
        read -r -t 60 line <&"$out"
        ck+=("$(awk -v u="${line#gap }" 'BEGIN { printf "%.1f", u / 1000 }')")
        line=$(grep '^ckpt: checkpoint written' "$err" | tail -n 1)
        [[ $line =~ paused\ ([0-9.]+)\ ms ]] && pre+=("${BASH_REMATCH[1]}") || pre+=("?")
    done
    exec {in}>&-
    wait "$pid" || true
    PG_CK=$(median "${ck[@]}")
    PG_QUIET=$(median "${quiet[@]}")
    PG_PRE=$(median "${pre[@]}")
}

echo "ckpt benchmark: $(nproc) CPUs, $(uname -r), images and baselines in $T ($(df -PT "$T" | awk 'NR == 2 { print $2 " on " $1 }'))"
echo "each figure is the median of $REPS runs"
echo

launch_costs
L_EXTRA=$(awk -v a="$L_CKPT" -v b="$L_PLAIN" 'BEGIN { printf "%.1f", a - b }')

# hello-test, and the restart of a small program.
ck=() pre=() rs=()
for ((i = 0; i < REPS; i++)); do
    hello_checkpoint
    ck+=("$CK_MS")
    pre+=("$PRE_MS")
    H_SIZE=$SIZE
done
H_CK=$(median "${ck[@]}")
H_PRE=$(median "${pre[@]}")
# The same restarts with new pids (no namespaces), interleaved: what the
# user, pid and mount namespaces, init and the exe change cost.
rn=()
for ((i = 0; i < REPS; i++)); do
    checkpoint_memtouch "$T/small.dat" 1 1
    restart_first_line "$T/small.dat"
    rs+=("$RS_MS")
    restart_first_line "$T/small.dat" --new-pids
    rn+=("$RS_MS")
done
S_RS=$(median "${rs[@]}")
S_RS_NEW=$(median "${rn[@]}")
S_NS=$(awk -v a="$S_RS" -v b="$S_RS_NEW" 'BEGIN { printf "%.1f", a - b }')

memtouch_case touched 1024 1024
A_CK=$M_CK A_PRE=$M_PRE A_RS=$M_RS A_SIZE=$M_SIZE A_ALLOC=$M_ALLOC
dd_baseline $(((A_SIZE + 1048575) / 1048576))
A_DDW=$DDW_MS A_DDR=$DDR_MS

memtouch_case sparse 1024 16
B_CK=$M_CK B_PRE=$M_PRE B_RS=$M_RS B_SIZE=$M_SIZE B_ALLOC=$M_ALLOC
dd_baseline $(((B_SIZE + 1048575) / 1048576))
B_DDW=$DDW_MS B_DDR=$DDR_MS

declare -A TH_PRE TH_CK
for n in 1 8 64; do
    ck=() pre=()
    for ((i = 0; i < REPS; i++)); do
        threads_checkpoint "$n"
        ck+=("$CK_MS")
        pre+=("$PRE_MS")
    done
    TH_PRE[$n]=$(median "${pre[@]}")
    TH_CK[$n]=$(median "${ck[@]}")
done
# A job of 8 small processes (ckpt --tree), against one.
declare -A TREE_PRE
for n in 1 8; do
    pre=()
    for _ in $(seq "$REPS"); do
        tree_checkpoint "$n"
        pre+=("$PRE_MS")
    done
    TREE_PRE[$n]=$(median "${pre[@]}")
done

TH_EXTRA=$(awk -v a="${TH_PRE[64]}" -v b="${TH_PRE[1]}" 'BEGIN { printf "%.1f", a - b }')

# Event loops: 1000 epoll registrations (of socketpair ends, or of eventfds)
# and 100 timerfds, against the same program with none.
declare -A EV_PRE
for c in "0 0" "1000 100 socket" "1000 100 eventfd"; do
    pre=()
    for ((i = 0; i < REPS; i++)); do
        # shellcheck disable=SC2086
        events_checkpoint $c
        pre+=("$PRE_MS")
    done
    EV_PRE[$c]=$(median "${pre[@]}")
done
EV_SOCK=$(awk -v a="${EV_PRE[1000 100 socket]}" -v b="${EV_PRE[0 0]}" 'BEGIN { printf "%.1f", a - b }')
EV_EFD=$(awk -v a="${EV_PRE[1000 100 eventfd]}" -v b="${EV_PRE[0 0]}" 'BEGIN { printf "%.1f", a - b }')

# Restoring many descriptors: 60,000 (or what the hard limit on open files
# allows) against a tenth as many; linear work gives a ratio near 10 (a table
# scan per pipe, as restart once did, gave 100 and more).
ulimit -Hn 70000 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"
MF_N=$(( $(ulimit -Hn) - 100 ))
(( MF_N > 60000 )) && MF_N=60000
MF_N=$(( MF_N / 4 * 4 ))
MF_SMALL=$(( MF_N / 40 * 4 ))
declare -A MF
for n in "$MF_SMALL" "$MF_N"; do
    t=()
    for _ in $(seq "$REPS"); do
        many_fds_restart "$n"
        t+=("$MF_MS")
    done
    MF[$n]=$(median "${t[@]}")
done

# What --portable costs: cpu-dispatch (memcpy, memmove, strlen... in a loop)
# run whole under ckpt natively and held to x86-64-v2 and -v3, the three
# interleaved in each repetition.
DISPATCH=$ROOT/demo/bin/cpu-dispatch
portable_run() {
    local t0 t1
    t0=$EPOCHREALTIME
    ./ckpt -q "$@" "$DISPATCH" 40 >/dev/null 2>"$T/portable.err" || die "cpu-dispatch under ckpt $*: $(cat "$T/portable.err")"
    t1=$EPOCHREALTIME
    ms_between "$t0" "$t1"
}
pn=() p2=() p3=()
for ((i = 0; i < REPS; i++)); do
    pn+=("$(portable_run)")
    p2+=("$(portable_run --portable=x86-64-v2)")
    p3+=("$(portable_run --portable=x86-64-v3)")
done
P_NATIVE=$(median "${pn[@]}") P_V2=$(median "${p2[@]}") P_V3=$(median "${p3[@]}")

# Copy-on-write checkpoints (--continue's default) against --no-cow (the
# program paused for the whole write, as before), 1 GiB and 4 MiB.
declare -A PAUSE
for mib in 1024 4; do
    pause_gaps "$mib"
    PAUSE[cow_$mib]=$PG_CK PAUSE[quiet_$mib]=$PG_QUIET PAUSE[pre_$mib]=$PG_PRE
    pause_gaps "$mib" --no-cow
    PAUSE[nocow_$mib]=$PG_CK PAUSE[nocowpre_$mib]=$PG_PRE
done

# Compression (ckpt --compress) against the same program written raw, and
# restart against a plain populate+read of the raw image (demo/popread: one
# thread, MADV_POPULATE_WRITE then read()), all in each repetition:
# 1 GiB of text-like memory (a cycle of log lines), then 1 GiB of random.
gbps() { awk -v ms="$1" 'BEGIN { if (ms > 0) printf "%.2f", 1.073741824 / (ms / 1000); else print "inf" }'; }
declare -A Z
for k in tr_ck tr_pre tl_ck tl_pre tr_rs tl_rs pop rr_pre rl_pre; do Z[$k]=""; done
for ((i = 0; i < REPS; i++)); do
    checkpoint_with "$T/text.dat" "" "$COMPRESSIBLE" 1024 0 0 tick
    Z[tr_ck]+=" $CK_MS" Z[tr_pre]+=" $PRE_MS" TR_SIZE=$SIZE
    checkpoint_with "$T/text-lz4.dat" --compress "$COMPRESSIBLE" 1024 0 0 tick
    Z[tl_ck]+=" $CK_MS" Z[tl_pre]+=" $PRE_MS" TL_SIZE=$SIZE
    restart_first_line "$T/text.dat"
    Z[tr_rs]+=" $RS_MS"
    restart_first_line "$T/text-lz4.dat"
    Z[tl_rs]+=" $RS_MS"
    t0=$EPOCHREALTIME
    "$POPREAD" "$T/text.dat" >/dev/null || die "popread failed"
    t1=$EPOCHREALTIME
    Z[pop]+=" $(ms_between "$t0" "$t1")"
    rm -f "$T/text.dat" "$T/text-lz4.dat"
    checkpoint_with "$T/random.dat" "" "$COMPRESSIBLE" 0 0 1024 tick
    Z[rr_pre]+=" $PRE_MS" RR_SIZE=$SIZE
    checkpoint_with "$T/random-lz4.dat" --compress "$COMPRESSIBLE" 0 0 1024 tick
    Z[rl_pre]+=" $PRE_MS" RL_SIZE=$SIZE
    rm -f "$T/random.dat" "$T/random-lz4.dat"
done
# shellcheck disable=SC2086
for k in "${!Z[@]}"; do Z[$k]=$(median ${Z[$k]}); done
# The checksum's widths on this CPU (GB/s), from the image crate's own test.
CHECKSUMS=$(cargo test -q --release -p ckpt-image -- --ignored checksum_speed --nocapture 2>/dev/null | grep '^checksum ' || echo "checksum: cargo test did not run")

row() { printf '%-44s %12s %12s %10s %8s %6s\n' "$@"; }
row "measure" "ckpt" "baseline" "ratio" "target" ""
row "-------" "----" "--------" "-----" "------" ""
row "launch: ckpt /bin/true vs /bin/true, ms" "$L_CKPT" "$L_PLAIN" "+$L_EXTRA" "<+2" "$(verdict "$L_EXTRA" 2)"
row "sh running 50 commands: ckpt vs plain, ms" "$SH_CKPT" "$SH_PLAIN" "$(ratio "$SH_CKPT" "$SH_PLAIN")" "" ""
row "  ckpt --no-tree vs plain, ms" "$SH_NOTREE" "$SH_PLAIN" "$(ratio "$SH_NOTREE" "$SH_PLAIN")" "" ""
row "hello-test: checkpoint (USR2 -> exit), ms" "$H_CK" "-" "-" "<10" "$(verdict "$H_CK" 10)"
row "hello-test: checkpoint, preload's own, ms" "$H_PRE" "-" "-" "" ""
row "hello-test: image, MiB" "$(mib "$H_SIZE")" "-" "-" "<5" "$(verdict "$(mib "$H_SIZE")" 5)"
row "memtouch 1 1: restart to first line, ms" "$S_RS" "-" "-" "<10" "$(verdict "$S_RS" 10)"
row "  exact pids (namespaces) vs --new-pids, ms" "$S_RS" "$S_RS_NEW" "+$S_NS" "<+5" "$(verdict "$S_NS" 5)"
for c in A B; do
    if [[ $c == A ]]; then
        label="A: 1024 MiB touched"; ck=$A_CK pre=$A_PRE rs=$A_RS size=$A_SIZE alloc=$A_ALLOC ddw=$A_DDW ddr=$A_DDR
    else
        label="B: 1024 MiB reserved, 16 touched"; ck=$B_CK pre=$B_PRE rs=$B_RS size=$B_SIZE alloc=$B_ALLOC ddw=$B_DDW ddr=$B_DDR
    fi
    rw=$(ratio "$ck" "$ddw") rr=$(ratio "$rs" "$ddr")
    row "$label" "" "" "" "" ""
    row "  checkpoint vs dd write+fsync, ms" "$ck" "$ddw" "$rw" "<=1.2x" "$(verdict "$rw" 1.2)"
    row "  checkpoint, preload's own, ms" "$pre" "" "" "" ""
    row "  restart to first line vs dd read, ms" "$rs" "$ddr" "$rr" "<=1.5x" "$(verdict "$rr" 1.5)"
    if [[ $c == B ]]; then
        row "  image (allocated $(mib "$alloc")), MiB" "$(mib "$size")" "" "" "<24" "$(verdict "$(mib "$size")" 24)"
    else
        row "  image (allocated $(mib "$alloc")), MiB" "$(mib "$size")" "" "" "" ""
    fi
done
for n in 1 8 64; do
    row "threads-count $n threads: signal -> image, ms" "${TH_PRE[$n]}" "" "" "" ""
done
row "  64 threads beyond 1 thread, ms" "$TH_EXTRA" "" "" "<5" "$(verdict "$TH_EXTRA" 5)"
row "tree-fork 1 process (--tree): signal -> image, ms" "${TREE_PRE[1]}" "" "" "" ""
row "tree-fork 8 processes (--tree): signal -> image, ms" "${TREE_PRE[8]}" "" "" "<50" "$(verdict "${TREE_PRE[8]}" 50)"
row "events-many: signal -> image, ms" "${EV_PRE[0 0]}" "" "" "" ""
row "  1000 socket regs + 100 timerfds beyond none" "$EV_SOCK" "" "" "<20" "$(verdict "$EV_SOCK" 20)"
row "  1000 eventfd regs + 100 timerfds beyond none" "$EV_EFD" "" "" "<20" "$(verdict "$EV_EFD" 20)"
r=$(ratio "${MF[$MF_N]}" "${MF[$MF_SMALL]}")
row "files-many: restart of $MF_N fds vs $MF_SMALL, ms" "${MF[$MF_N]}" "${MF[$MF_SMALL]}" "$r" "<=15x" "$(verdict "$r" 15)"
for mib in 1024 4; do
    target=$([[ $mib == 1024 ]] && echo 20 || echo 5)
    row "pause-gap $mib MiB, --continue: its pause" "" "" "" "" ""
    row "  copy-on-write vs --no-cow, ms" "${PAUSE[cow_$mib]}" "${PAUSE[nocow_$mib]}" \
        "$(ratio "${PAUSE[cow_$mib]}" "${PAUSE[nocow_$mib]}")" "<$target" "$(verdict "${PAUSE[cow_$mib]}" "$target")"
    row "  capture's own figure, cow vs --no-cow, ms" "${PAUSE[pre_$mib]}" "${PAUSE[nocowpre_$mib]}" "" "" ""
    row "  a quiet 0.5 s without checkpoint, ms" "${PAUSE[quiet_$mib]}" "" "" "" ""
done
row "C: 1 GiB text-like (log lines), --compress" "" "" "" "" ""
row "  checkpoint (USR2 -> exit) lz4 vs raw, ms" "${Z[tl_ck]}" "${Z[tr_ck]}" "$(ratio "${Z[tl_ck]}" "${Z[tr_ck]}")" "" ""
row "  checkpoint, preload's own, ms" "${Z[tl_pre]}" "${Z[tr_pre]}" "$(ratio "${Z[tl_pre]}" "${Z[tr_pre]}")" "" ""
r=$(gbps "${Z[tl_pre]}")
row "  compressible input at checkpoint, GB/s" "$r" "$(gbps "${Z[tr_pre]}")" "" ">=1" "$(awk -v v="$r" 'BEGIN { print (v >= 1) ? "PASS" : "MISS" }')"
row "  image, MiB (lz4 vs raw)" "$(mib "$TL_SIZE")" "$(mib "$TR_SIZE")" "$(ratio "$TL_SIZE" "$TR_SIZE")" "<20" "$(verdict "$(mib "$TL_SIZE")" 20)"
r=$(ratio "${Z[tl_rs]}" "${Z[tr_rs]}")
row "  restart to first line lz4 vs raw, ms" "${Z[tl_rs]}" "${Z[tr_rs]}" "$r" "<=1.3x" "$(verdict "$r" 1.3)"
r=$(ratio "${Z[tr_rs]}" "${Z[pop]}")
row "  restart (raw) vs populate+read, ms" "${Z[tr_rs]}" "${Z[pop]}" "$r" "<0.6x" "$(verdict "$r" 0.59)"
row "D: 1 GiB random, --compress" "" "" "" "" ""
r=$(ratio "$RL_SIZE" "$RR_SIZE")
row "  image, MiB (lz4 vs raw)" "$(mib "$RL_SIZE")" "$(mib "$RR_SIZE")" "$r" "<=1.03x" "$(verdict "$r" 1.03)"
row "  checkpoint, preload's own, ms" "${Z[rl_pre]}" "${Z[rr_pre]}" "$(ratio "${Z[rl_pre]}" "${Z[rr_pre]}")" "" ""
row "cpu-dispatch 40 (string functions), ms" "" "" "" "" ""
row "  --portable=x86-64-v2 vs native" "$P_V2" "$P_NATIVE" "$(ratio "$P_V2" "$P_NATIVE")" "" ""
row "  --portable=x86-64-v3 vs native" "$P_V3" "$P_NATIVE" "$(ratio "$P_V3" "$P_NATIVE")" "" ""
# Incremental checkpoints: full against delta, in one run (its own script).
bash bench/incremental.sh
echo
echo "Checksum (XXH3-64) on this CPU, by vector width; restart and ckpt use the widest:"
echo "$CHECKSUMS"
echo
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores."
echo "The restart time of hello-test itself is not measured: its stdout, a pipe"
echo "or a file, is fully buffered, so it prints nothing until it exits. 'memtouch 1 1'"
echo "(a small program printing a flushed line every ms) stands in for it."
echo
echo "DMTCP, for scale: hello-test checkpoint 0.42 s, restart 0.20 s, image 22.4 MiB;"
echo "1 GiB touched: checkpoint 1.86 s, restart 1.01 s; 1 GiB reserved, 16 MiB touched: image 38.4 MiB."
