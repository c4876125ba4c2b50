"""Benchmark of the offline evaluation: the sandbox's throughput and memory, and a greedy HumanEval run.

Prints
1. programs/s of `eval reference` (HumanEval 164, MBPP test 500) on the old path (verdicts
   inside the program: the code at OLD_REF, exported from git) and the new one (a checker
   outside the sandbox, a cgroup per program), in paired rounds, alternating which goes
   first, each in a fresh process; the ratio per round and its median;
2. the scoring harness's peak RSS on a 100k-line samples file (MBPP, its 500 canonical
   solutions 200 times each): a cold start killed after the first programs, and a resume
   with all but the last rows already in the rows file, run to its end;
3. the wall time of a full greedy HumanEval run (164 problems, max_gen_toks 1024, batch 8)
   on a random laptop-size Llama (6 layers, d 128, 4 heads, 2 kv heads, ffn 352, vocab 4096)
   or on a trained model directory (`--model`),
   split into model load + generation + execution as lm-eval runs them;
4. with --stage: the evaluate stage (HumanEval + MBPP with the recipe's eval settings) before
   and after this change in paired rounds, completions checked byte-identical, with
   generated tokens/s and the time per phase (benchmarks/eval_stage.py).
The machine load is printed with the figures: on shared CPUs they move a lot.

    python benchmarks/bench_eval.py                 # everything (15-20 minutes)
    python benchmarks/bench_eval.py --skip-generation --skip-memory --rounds 3
    python benchmarks/bench_eval.py --skip-sandbox --skip-generation   # peak RSS only
    python benchmarks/bench_eval.py --limit 16      # a shorter generation run
    python benchmarks/bench_eval.py --skip-sandbox --skip-memory --model runs/<run>/export   # a trained model
    python benchmarks/bench_eval.py --stage --model runs/<run>/export --rounds 3   # before/after
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's harness, not an installed one

from benchmarks.machine import load  # noqa: E402

OLD_REF = "800c083"  # the last commit whose verdicts came from inside the program (a nonce)
REFERENCE_RUN = """
import json, sys, time
from harness.eval.benchmarks import scoring
from harness.eval.sandbox.runner import SandboxConfig, open_sandbox
box = open_sandbox(SandboxConfig(**json.loads(sys.argv[1])))
out = {"kind": box.kind}
for task in ("humaneval", "mbpp"):
    started = time.monotonic()
    summary, _ = scoring.reference(task, box)
    out[task] = [summary["passed"], summary["samples"], time.monotonic() - started]
print(json.dumps(out))
"""


def _export_old(ref: str, into: Path) -> Path | None:
    """The harness package as it was at `ref`, or None where git cannot give it."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", ref, "harness"], capture_output=True)
    if archive.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


def _reference_run(package_root: Path, workers: int | None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    config = json.dumps({"workers": workers} if workers else {})
    done = subprocess.run([sys.executable, "-c", REFERENCE_RUN, config], env=env, capture_output=True, text=True,
                          cwd=package_root, check=True)  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_sandbox(workers: int | None, rounds: int, old_ref: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        old = _export_old(old_ref, Path(tmp))
        if old is None:
            print(f"sandbox: cannot export {old_ref} from git here, so the old path is not measured")
            return
        print(f"sandbox: eval reference, old path ({old_ref}) vs new path, {rounds} paired rounds; {load()}")
        ratios: dict[str, list[float]] = {"humaneval": [], "mbpp": []}
        for round_ in range(rounds):
            order = [("old", old), ("new", ROOT)] if round_ % 2 == 0 else [("new", ROOT), ("old", old)]
            runs = {name: _reference_run(root, workers) for name, root in order}
            for task in ratios:
                rate = {name: run[task][1] / run[task][2] for name, run in runs.items()}
                ratios[task].append(rate["old"] / rate["new"])
                print(f"  round {round_ + 1} {task:9s} old {rate['old']:5.1f} programs/s ({runs['old'][task][0]} passed), "
                      f"new {rate['new']:5.1f} programs/s ({runs['new'][task][0]} passed, {runs['new']['kind']}): "
                      f"new costs {ratios[task][-1]:.2f}x")  # fmt: skip
        for task, values in ratios.items():
            print(f"  {task:9s} median: the new path costs {statistics.median(values):.2f}x the old one; {load()}")


SCORE_WITH_MAXRSS = """
import atexit, resource, sys
atexit.register(lambda: sys.stderr.write(f"maxrss_kb {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}\\n"))
sys.argv = ["harness", *sys.argv[1:]]
from harness.cli import main
main()
"""


def _samples_file(directory: Path, lines: int) -> tuple[Path, list[dict]]:
    from harness.eval.benchmarks import programs

    problems = programs.reference_problems("mbpp")
    records = [{"task_id": problems[i % len(problems)]["task_id"], "completion": problems[i % len(problems)]["code"]}
               for i in range(lines)]  # fmt: skip
    path = directory / "samples.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path, records


def _peak_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _score(samples: Path, out: Path, stop_after_rows: int | None) -> tuple[int, float, str]:
    """Run `harness eval score`; (peak RSS KB, seconds, how it ended)."""
    argv = [sys.executable, "-c", SCORE_WITH_MAXRSS, "eval", "score", str(samples), "--task", "mbpp", "--k", "1,10,100",
            "--out", str(out)]  # fmt: skip
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _peak_rss_kb(proc.pid))
        if stop_after_rows and out.exists() and out.read_bytes().count(b"\n") >= stop_after_rows:
            proc.send_signal(signal.SIGKILL)  # a killed scoring, as an abort or an OOM kill would leave it
            proc.wait()
            return peak, time.monotonic() - started, f"killed after {stop_after_rows} rows"
        time.sleep(0.2)
    stderr = proc.stderr.read()
    peak = max([peak] + [int(line.split()[1]) for line in stderr.splitlines() if line.startswith("maxrss_kb")])
    return peak, time.monotonic() - started, f"exit status {proc.returncode}"


def bench_memory(lines: int, cold_rows: int, last_rows: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        samples, records = _samples_file(Path(tmp), lines)
        print(f"scoring memory: {lines} lines ({samples.stat().st_size >> 20} MB) of MBPP samples; {load()}")
        peak, seconds, how = _score(samples, Path(tmp) / "cold.jsonl", cold_rows)
        print(f"  cold start, {how}: peak RSS {peak / 1024:.0f} MB ({seconds:.0f} s)")
        seen: dict = {}
        out = Path(tmp) / "resumed.jsonl"
        with out.open("w") as handle:
            for record in records[: lines - last_rows]:
                index = seen[record["task_id"]] = seen.get(record["task_id"], -1) + 1
                handle.write(json.dumps({"task_id": record["task_id"], "sample": index, "completion": record["completion"],
                                         "status": "passed", "reason": ""}) + "\n")  # fmt: skip
        peak, seconds, how = _score(samples, out, None)
        print(f"  resume with {lines - last_rows} rows done, the last {last_rows} run, {how}: "
              f"peak RSS {peak / 1024:.0f} MB ({seconds:.0f} s); {load()}")


def bench_generation(limit: int | None, threads: int, trained: Path | None) -> None:
    from harness.eval.benchmarks.evaluate import evaluate_model
    from harness.eval.benchmarks.random_model import LAPTOP_SHAPE, build_random_model
    from harness.eval.config import EvalConfig

    with tempfile.TemporaryDirectory() as tmp:
        # A random model never emits a stop sequence, so it always generates all 1024 tokens:
        # the worst case. A trained laptop model (--model RUN/export) stops where it stops.
        model = trained or build_random_model(Path(tmp) / "model")
        what = f"trained model {trained}" if trained else f"random Llama {LAPTOP_SHAPE}"
        cfg = EvalConfig(tasks=["humaneval"], max_gen_toks=1024, batch_size=8, limit=limit, num_threads=threads)
        print(f"greedy HumanEval: {what}, max_gen_toks 1024, batch 8, "
              f"torch threads {threads}, {limit or 164} problems; {load()}")  # fmt: skip
        started = time.monotonic()
        summary = evaluate_model(model, cfg, Path(tmp) / "out")
        seconds = time.monotonic() - started
    print(f"  wall time {seconds:.0f} s ({seconds / 60:.1f} min) end to end; "
          f"pass@1 {summary['humaneval/pass_at_1']:.3f} (random and laptop-size models score ~0); {load()}")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="HumanEval problems in the generation run (default: all 164)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest for this size; docs/MEASURED.md)")
    parser.add_argument("--workers", type=int, help="sandbox workers (default: one per CPU)")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds (eval reference old/new; --stage)")
    parser.add_argument("--old-ref", default=OLD_REF, help="git revision of the old path")
    parser.add_argument("--lines", type=int, default=100_000, help="lines of the samples file for the memory figure")
    parser.add_argument("--skip-sandbox", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-generation", action="store_true")
    parser.add_argument("--model", type=Path, help="an exported model directory (e.g. runs/<run>/export); default: random")
    parser.add_argument("--stage", action="store_true", help="only the paired before/after evaluate-stage benchmark")
    parser.add_argument("--recipe", type=Path, default=Path("recipes/laptop/base.yaml"), help="--stage: whose eval settings")
    parser.add_argument("--before-threads", type=int, help="--stage: torch threads of the before arm (default: CPUs)")
    parser.add_argument("--arms", help="--stage: a subset of before,backend,after,shipped (before first)")
    args = parser.parse_args()
    if args.stage:
        from benchmarks.eval_stage import bench_evaluate_stage

        if args.model is None:
            parser.error("--stage needs --model (a trained export: a random model never stops)")
        arms = args.arms.split(",") if args.arms else None
        bench_evaluate_stage(args.model, args.recipe, args.rounds, args.limit, args.before_threads, arms)
        return
    if not args.skip_sandbox:
        bench_sandbox(args.workers, args.rounds, args.old_ref)
    if not args.skip_memory:
        bench_memory(args.lines, cold_rows=1000, last_rows=200)
    if not args.skip_generation:
        bench_generation(args.limit, args.threads, args.model)


if __name__ == "__main__":
    main()
