"""Alternating rounds of `sdpipe bench` and its PyTorch peer (sd15_peer.py) for the three figures of the performance
goal: the UNet forward at 512 px batch 2 (one sampling step), the VAE encode at 256 px and the training step at 256 px.

One process at a time; within a round each case runs PyTorch's side and ours back to back, the order swapped every
round so that a drifting load does not favour one side. Before each pair PyTorch's 4096^3 fp32 matmul is timed: on a
shared machine it says whether the pair ran quiet. Ratios are ours / PyTorch's per pair, so compare them only within a
pair, and read the median over rounds. The training cases also print each side's first (warm-up) step and its ratio to
that side's median step, the goal's warm-up figure; train-step-512 is the goal's 512 px memory and warm-up.

    python3 docs/pytorch-peer/rounds.py --sdpipe src/SdPipeline.Cli/bin/Release/net10.0/sdpipe \
        --peer "python3 docs/pytorch-peer/sd15_peer.py" --rounds 3 --out rounds.json

--peer is the command that runs sd15_peer.py where PyTorch is installed; give it the environment PyTorch's best path
needs (LD_PRELOAD of tcmalloc, OMP_NUM_THREADS=2), e.g. "env LD_PRELOAD=... OMP_NUM_THREADS=2 python3 sd15_peer.py".
"""
import argparse, json, os, shlex, statistics, subprocess, sys, tempfile, time

# case: (our bench arguments, the row of our report, the peer's arguments)
CASES = {
    "unet": (["unet", "--sizes", "64", "--batch", "2", "--repeats", "3"], ("unet", "forward"),
             ["unet", "--size", "64", "--batch", "2", "--repeats", "3"]),
    "vae": (["vae", "--sizes", "32", "--repeats", "5"], ("vae", "encode"),
            ["vae", "--size", "32", "--whole-vae", "--repeats", "5"]),
    "train-step": (["train-step"], ("train_step", "step"),
                   ["train-step", "--mkldnn", "off"]),
    # The goal's memory and warm-up at 512 px (its time goal is the 256 px step's).
    "train-step-512": (["train-step", "--sizes", "64"], ("train_step", "step"),
                       ["train-step", "--mkldnn", "off", "--size", "64"]),
    # The step as the trainer runs it with diffusers' clipping and an EMA (train.max_grad_norm=1, train.use_ema=true);
    # PyTorch's fastest EMA update is torch.optim.swa_utils' _foreach_lerp_, faster than diffusers' foreach EMAModel.
    "train-step-clip-ema": (["train-step", "--max-grad-norm", "1", "--ema"], ("train_step", "step"),
                            ["train-step", "--mkldnn", "off", "--max-grad-norm", "1", "--ema", "lerp"]),
}
GIB = float(1 << 30)


def peer(command, args):
    """The peer's JSON line (its last line of output)."""
    run = subprocess.run(shlex.split(command) + args, capture_output=True, text=True)
    lines = [l for l in run.stdout.splitlines() if l.startswith("{")]
    if run.returncode != 0 or not lines:
        sys.exit(f"the peer failed ({' '.join(args)}): {(run.stderr or run.stdout).strip()[-600:]}")
    return json.loads(lines[-1])


def ours(sdpipe, args, row):
    """Median seconds and peaks of one row of `sdpipe bench`'s JSON report, the warm-up step and our matmul probes."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "bench.json")
        run = subprocess.run([sdpipe, "bench"] + args + ["--output", path], capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit(f"sdpipe bench {' '.join(args)} failed (exit {run.returncode}): {(run.stderr or run.stdout).strip()[-600:]}")
        with open(path) as f:
            report = json.load(f)
        rows, summary = report["rows"], report.get("summary") or {}
    found = [r for r in rows if (r["model"], r["case"]) == row]
    if not found:
        sys.exit(f"sdpipe bench {' '.join(args)} wrote no {row[0]} {row[1]} row")
    r = found[0]
    anonymous = r.get("peak_anonymous_bytes")
    return dict(seconds=r["median_seconds"], peak_rss_gib=r["peak_rss_bytes"] / GIB,
                peak_anonymous_gib=None if anonymous is None else anonymous / GIB,
                warmup_s=summary.get("warmup_step_seconds"),
                # Our own matmul probes (after the model cases; for train-step also one after each timed step): whether
                # our side ran on a slower host than the matmul timed before the pair.
                matmul_s=statistics.median(report["matmul_after"]["seconds"]))


def warmups(sides):
    """The training cases' first steps, each beside its own side's median step (the goal: at most 2x)."""
    if any(sides[side].get("warmup_s") is None for side in sides):
        return ""
    return "  warm-up " + "  ".join(f"{name} {sides[side]['warmup_s']:.1f} s ({sides[side]['warmup_s'] / sides[side]['seconds']:.1f}x)"
                                    for side, name in (("ours", "ours"), ("pytorch", "PyTorch")))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sdpipe", required=True, help="the sdpipe executable (a Release build)")
    p.add_argument("--peer", required=True, help="the command that runs sd15_peer.py (see above)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--cases", default="unet,vae,train-step", help="comma-separated: " + ", ".join(CASES))
    p.add_argument("--anonymous-peak", action="store_true",
                   help="the peer also samples its anonymous peak (~3%% of one core, so its times carry that)")
    p.add_argument("--kernels", default="auto",
                   help="our side's runtime.kernels: auto, or amd / intel to time that vendor's kernel rules on this CPU")
    p.add_argument("--out", help="also write every pair as JSON to this file")
    a = p.parse_args()
    cases = [c.strip() for c in a.cases.split(",") if c.strip()]
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        sys.exit(f"--cases: unknown {', '.join(unknown)}; known: {', '.join(CASES)}")

    pairs = []
    for round_ in range(1, a.rounds + 1):
        for case in cases:
            bench_args, row, peer_args = CASES[case]
            bench_args = bench_args + ["--kernels", a.kernels]
            if a.anonymous_peak:
                peer_args = peer_args + ["--anonymous-peak"]
            matmul = peer(a.peer, ["matmul"])["median_s"]
            sides = {}
            for side in (("ours", "pytorch") if round_ % 2 else ("pytorch", "ours")):
                if side == "ours":
                    sides["ours"] = ours(a.sdpipe, bench_args, row)
                else:
                    figure = peer(a.peer, peer_args)
                    sides["pytorch"] = dict(seconds=figure["median_s"], peak_rss_gib=figure["peak_rss_gib"],
                                            peak_anonymous_gib=figure.get("peak_anonymous_gib"),
                                            warmup_s=figure.get("warmup_step_s"))
            pair = dict(round=round_, case=case, pytorch_matmul_s=matmul, time=time.strftime("%H:%M:%S"), **sides,
                        ratio=sides["ours"]["seconds"] / sides["pytorch"]["seconds"])
            pairs.append(pair)
            print(f"round {round_} {case:10}  matmul {matmul:.3f} s  ours {sides['ours']['seconds']:.3f} s "
                  f"(its matmul {sides['ours']['matmul_s']:.3f} s) "
                  f"{sides['ours']['peak_rss_gib']:.2f} GiB  PyTorch {sides['pytorch']['seconds']:.3f} s "
                  f"{sides['pytorch']['peak_rss_gib']:.2f} GiB  ratio {pair['ratio']:.2f}{warmups(sides)}", flush=True)
            if a.out:
                with open(a.out + ".tmp", "w") as f:
                    json.dump(pairs, f, indent=1)
                os.replace(a.out + ".tmp", a.out)

    print("\n| case | ratios (ours / PyTorch) | median | PyTorch's matmul in those rounds |")
    print("| --- | --- | --- | --- |")
    for case in cases:
        mine = [q for q in pairs if q["case"] == case]
        ratios = [q["ratio"] for q in mine]
        print(f"| {case} | {' / '.join(f'{r:.2f}' for r in ratios)} | {statistics.median(ratios):.2f} | "
              f"{min(q['pytorch_matmul_s'] for q in mine):.3f}–{max(q['pytorch_matmul_s'] for q in mine):.3f} s |")


if __name__ == "__main__":
    main()
