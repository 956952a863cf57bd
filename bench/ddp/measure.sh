#!/bin/bash
# Every measurement docs/DISTRIBUTED.md needs, in one run of about 7
# minutes on the AVX-512 VM (bounded to 20: each command has a time limit), on a quiet
# machine with 2 cores, as root (the network namespaces need it).
#
# Usage: bench/ddp/measure.sh OUT_DIR [--smoke]
#   --smoke: tiny sizes (batch 8/2, 1–2 steps, ResNet-50 at 64×64): checks
#            that every part runs; its timings mean nothing.
#
# What it runs, in order (residual's ddpbench and PyTorch DDP with Gloo,
# torch_ddp.py, which preloads jemalloc as ../shared/anchors/torch_bench.py
# does; every rank bound to its own core):
#   local    bench/ddp/run.sh: CIFAR ResNet-20 (batch 128 in all; 10 timed
#            steps after 2) and ResNet-50 (224×224, batch 16 in all; 3 timed
#            steps after 1), each as 1 process × 2 threads, 1 × 1 thread and
#            2 ranks × 1 thread (MPI over shared memory / Gloo over loopback).
#   netns    for 10gbit and 1gbit: bench/ddp/netns.sh check (round trip and
#            TCP rate of the shaped veth), then the 2-rank runs of both
#            models, ours and torch, with the ranks in two network
#            namespaces joined by the veth (real TCP traffic; netns.sh's
#            LINK line gives the bytes that crossed it). A latency is added
#            only where the kernel has sch_netem; the LINK and check lines
#            say what was applied ("delay": "0" when none could be).
#   netns-1gbit-tun-0.5ms  the same over bench/ddp/linkemu's user-space
#            link (netns.sh --link tun): 1 Gbit/s and 0.5 ms one way, a
#            latency on any kernel (its LINKEMU line: the forwarder's
#            timing and CPU time).
#   scaling  bench/ddp/scaling.py's model of ResNet-50 on 1–64 ranks at 10
#            and 1 Gbit/s (and at 1 Gbit/s with 0.5 ms latency), from the
#            measured 1 × 1 step and the hidden fraction measured over each
#            link (a model, not a measurement).
#
# OUT_DIR receives:
#   results.jsonl  one JSON object per line: every RESULT and LINK line of
#                  the scripts, with "section" (local, netns-10gbit, …),
#                  "source" (ddpbench, torch, link, check, env) and, for
#                  failures, "error"; the first line describes the machine.
#   scaling.txt    scaling.py's tables.
#   log.txt        everything the scripts said on stderr.
# ddpbench's fields: step_s (trainer step, buckets overlapping backward),
# comm_s (the all-reduces alone: the total communication), exposed_s (the
# part of the step spent waiting for them: what the overlap did not hide),
# hidden_s = comm_s − exposed_s, hidden_frac, step_after_s, img_per_s.
# torch_ddp.py gives the same names (exposed_s from a no_sync() step).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${1:-}
[[ -n $out && $out != --* ]] || { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
shift
smoke=0
[[ ${1:-} == --smoke ]] && smoke=1
mkdir -p "$out"
out=$(cd "$out" && pwd)
results=$out/results.jsonl log=$out/log.txt
: >"$results"
: >"$log"
tmp=$(mktemp -d)
# netns.sh deletes its namespaces on exit; one killed by its time limit's
# SIGKILL leaves them, with whatever runs there, to be ended here.
cleanup() {
	rm -rf "$tmp"
	if [[ $(id -u) -eq 0 ]]; then
		for ns in rsdl0 rsdl1 rsdlc; do
			pids=$(ip netns pids "$ns" 2>/dev/null || true)
			[[ -n $pids ]] && kill $pids 2>/dev/null || true
			ip netns del "$ns" 2>/dev/null || true
		done
	fi
}
trap cleanup EXIT
start=$(date +%s)
deadline=$((start + 20 * 60))

if [[ $smoke -eq 1 ]]; then
	rn20=(--steps 1 --warmup 0) rn50=(--steps 1 --warmup 0 --side 64) quick=(--quick)
	b20=4 b50=2
else
	rn20=(--steps 10 --warmup 2) rn50=(--steps 3 --warmup 1) quick=()
	b20=64 b50=8
fi

# collect SECTION: reads a script's stdout, appends its RESULT/LINK lines to
# results.jsonl with the section and source added, and echoes them.
collect() {
	python3 -c '
import json, sys
section, path = sys.argv[1], sys.argv[2]
with open(path, "a") as f:
    for line in sys.stdin:
        line = line.rstrip("\n")
        print(line, flush=True)
        for prefix, default in (("RESULT ", None), ("LINK ", "link"), ("LINKEMU ", "linkemu")):
            if line.startswith(prefix):
                r = json.loads(line[len(prefix):])
                src = default or ("torch" if str(r.get("name", "")).startswith("torch") else
                                  "check" if str(r.get("name", "")).startswith(("veth", "tun")) else "ddpbench")
                f.write(json.dumps({"section": section, "source": src, **r}) + "\n")
' "$1" "$results"
}

# run SECTION WHAT LIMIT_S CMD...: runs CMD with a time limit (cut to what
# is left of the 20 minutes), records a failure as a line with "error".
run() {
	local section=$1 what=$2 lim=$3
	shift 3
	local left=$((deadline - $(date +%s)))
	if ((left < 20)); then
		echo "measure.sh: no time left for $section $what" | tee -a "$log" >&2
		echo "{\"section\":\"$section\",\"source\":\"$what\",\"error\":\"skipped: the 20 minutes were spent\"}" >>"$results"
		return
	fi
	((lim > left)) && lim=$left
	echo "== $section: $what (limit ${lim}s, $(($(date +%s) - start))s in)" | tee -a "$log" >&2
	local rc=0
	timeout --signal=TERM --kill-after=15 "$lim" "$@" 2>>"$log" | collect "$section" || rc=$?
	if ((rc != 0)); then
		echo "measure.sh: $section $what failed (status $rc; see log.txt)" | tee -a "$log" >&2
		echo "{\"section\":\"$section\",\"source\":\"$what\",\"error\":\"status $rc\"}" >>"$results"
	fi
}

# The machine.
load=$(cut -d' ' -f1 /proc/loadavg)
python3 - "$results" "$load" "$smoke" <<'EOF'
import json, os, platform, subprocess, sys
def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=60).stdout.strip()
    except Exception as e:
        return f"? ({e})"
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
flags = next((l for l in open("/proc/cpuinfo") if l.startswith("flags")), "")
env = dict(section="env", source="env", date=sh("date -u +%FT%TZ"), cpu=cpu, cores=os.cpu_count(),
           avx512="avx512f" in flags, kernel=platform.release(), load_avg_1m=float(sys.argv[2]),
           smoke=sys.argv[3] == "1", go=sh("go version"), commit=sh("git rev-parse --short HEAD"),
           mpi=sh("ompi_info --version 2>/dev/null | head -1") or sh("mpirun --version | head -1"),
           torch=sh("/usr/bin/python3 -c 'import torch; print(torch.__version__)'"),
           jemalloc=os.path.exists("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"),
           root=os.geteuid() == 0)
with open(sys.argv[1], "a") as f:
    f.write(json.dumps(env) + "\n")
print("RESULT-ENV " + json.dumps(env))
EOF
if awk "BEGIN{exit !($load > 0.5)}"; then
	echo "measure.sh: WARNING: load average $load — the machine is not quiet; the timings will be off" | tee -a "$log" >&2
fi

echo "== building ddpbench (-tags mpi)" >&2
(cd "$root" && CGO_ENABLED=1 go build -tags mpi -o "$tmp/ddpbench" ./bench/ddp/ddpbench) 2>>"$log"
export DDPBENCH=$tmp/ddpbench

# 1. One machine, shared memory / loopback.
run local "ours resnet20" 120 "$here/run.sh" --no-torch --models resnet20 "${quick[@]}" "${rn20[@]}"
run local "torch cifar20" 120 "$here/run.sh" --no-ours --models resnet20 "${quick[@]}" "${rn20[@]}"
run local "ours resnet50" 240 "$here/run.sh" --no-torch --models resnet50 "${quick[@]}" "${rn50[@]}"
run local "torch rn50" 180 "$here/run.sh" --no-ours --models resnet50 "${quick[@]}" "${rn50[@]}"

# 2. Two namespaces over a shaped veth.
if [[ $(id -u) -ne 0 ]]; then
	echo "measure.sh: not root: no network namespaces, the netns section is skipped" | tee -a "$log" >&2
	echo '{"section":"netns","source":"netns","error":"skipped: not root"}' >>"$results"
else
	for link in "netns-10gbit --rate 10gbit" "netns-1gbit --rate 1gbit" \
		"netns-1gbit-tun-0.5ms --link tun --rate 1gbit --delay 0.5ms"; do
		read -r s net <<<"$link"
		read -ra net <<<"$net"
		run "$s" check 60 "$here/netns.sh" "${net[@]}" check
		run "$s" "ours resnet20" 120 "$here/netns.sh" "${net[@]}" ours --model resnet20 --batch "$b20" "${rn20[@]}"
		run "$s" "torch cifar20" 120 "$here/netns.sh" "${net[@]}" torch --model cifar20 --batch "$b20" "${rn20[@]}"
		run "$s" "ours resnet50" 150 "$here/netns.sh" "${net[@]}" ours --model resnet50 --batch "$b50" "${rn50[@]}"
		run "$s" "torch rn50" 120 "$here/netns.sh" "${net[@]}" torch --model rn50 --batch "$b50" "${rn50[@]}"
	done
fi

# 3. The scaling model, from the measurements.
python3 - "$results" >"$out/scaling.txt" 2>>"$log" <<EOF || echo "measure.sh: no scaling model (see log.txt)" | tee -a "$log" >&2
import json, subprocess, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
def find(section, ranks, threads=1):
    for r in rs:
        if (r.get("section") == section and r.get("source") == "ddpbench" and r.get("model") == "resnet50"
                and r.get("ranks") == ranks and r.get("threads") == threads):
            return r
    return None
one = find("local", 1)
if one is None:
    sys.exit("no ResNet-50 1 x 1 result")
for gbit, section, latency_us in ((10, "netns-10gbit", 50), (1, "netns-1gbit", 50), (1, "netns-1gbit-tun-0.5ms", 500)):
    two = find(section, 2) or {}
    overlap = two.get("hidden_frac", 0.0)
    # one rank's compute: the 1 x 1 step scaled to the per-rank batch of the 2-rank runs
    compute = one["step_s"] * two.get("batch_per_rank", one["batch_per_rank"]) / one["batch_per_rank"]
    print(f"# {section}: compute {compute:.4g} s (1 x 1 step, per-rank batch), overlap {overlap:.3g} (hidden_frac measured there)", flush=True)
    subprocess.run(["python3", "$here/scaling.py", "--compute-s", str(compute), "--grad-mb", str(one["grad_bytes"] / 2**20),
                    "--buckets", str(one["buckets"]), "--gbit", str(gbit), "--overlap", str(overlap),
                    "--latency-us", str(latency_us)], check=True)
EOF
cat "$out/scaling.txt"
echo "measure.sh: done in $(($(date +%s) - start))s; results in $results" | tee -a "$log" >&2
