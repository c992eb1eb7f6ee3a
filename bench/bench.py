#!/usr/bin/env python
"""seqgen's benchmarks: every measurement side by side in one run, reported as ratios.

Machines are noisy, so absolute seconds mean little; what this script reports is each command
against `python -c "import torch"` (and the linearity and summary rows against their own
references), measured in the same run. Each run ("round") executes every case once, in a shuffled
order, each as a fresh subprocess; wall time is taken around the child and its peak RSS comes
from `os.wait4` (the kernel's ru_maxrss for that child alone). Ratios are the median of the
per-round ratios; seconds and MB are medians.

    python bench/bench.py              # 5 rounds (a few minutes)
    python bench/bench.py --quick      # 1 round, for a smoke test
    python bench/bench.py --markdown   # the table for BENCHMARKS.md
    python bench/bench.py --profile    # where `seqgen new cnn.seq` spends its time, by stage
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CNN_SPEC = REPO / "generated_examples" / "cnn.seq"
VGG16_SPEC = REPO / "bench" / "vgg16.seq"
RESNET_SPEC = REPO / "bench" / "resnet50blocks.seq"
TEXT_LSTM_SPEC = REPO / "generated_examples" / "text_lstm.seq"
# Real architectures, each checked against a torchvision-equivalent reference (parameter count
# and output shape) by tests/architectures/test_reference.py.
RESNET50_SPEC = REPO / "tests" / "architectures" / "resnet50.seq"
EFFICIENTNET_B0_SPEC = REPO / "tests" / "architectures" / "efficientnet_b0.seq"
OUT = "{out}"  # in a case's argv: replaced by a fresh, empty directory for each execution
RSS_UNIT = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux

# The same VGG-16 as bench/vgg16.seq, built by hand for torchinfo (it runs a real forward pass).
TORCHINFO_VGG16 = textwrap.dedent("""\
    import torch, torchinfo
    from torch import nn
    CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
    layers, channels = [], 3
    for v in CFG:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(channels, v, kernel_size=3, padding=1), nn.ReLU()]
            channels = v
    layers += [nn.Flatten(), nn.Linear(512 * 7 * 7, 4096), nn.ReLU(), nn.Dropout(),
               nn.Linear(4096, 4096), nn.ReLU(), nn.Dropout(), nn.Linear(4096, 1000)]
    torchinfo.summary(nn.Sequential(*layers), input_size=(1, 3, 224, 224))
""")

# Exits 0 when this seqgen reads spec language v2 (blocks and merges, issue #10).
V2_PROBE = textwrap.dedent("""\
    from seqgen.lang.parser import parse
    parse("input 4x8x8\\nblock Probe(out):\\n    residual:\\n        conv2d out k=3 p=1\\n"
          "    relu\\nProbe 4\\n")
""")

# Runs the CLI in-process and says whether it imported torch (exit codes are irrelevant here).
TORCH_IMPORTED = textwrap.dedent("""\
    import sys
    from seqgen.cli import main
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
    print("torch" in sys.modules, file=sys.__stderr__)
""")


@dataclass(frozen=True)
class Case:
    """One command to time, and what it is judged against."""

    key: str
    label: str
    argv: tuple[str, ...]
    goal: str = ""
    skip: str = ""  # why the case cannot run with this seqgen ("" when it can)
    cached: bool = False  # run with seqgen's trace cache on (and warm); others trace cold


@dataclass
class Sample:
    """What one execution of a case measured."""

    seconds: float
    peak_mb: float
    ok: bool


@dataclass
class Results:
    """All rounds of all cases, and the first failure's output for each failing case."""

    rounds: list[dict[str, Sample]] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def samples(self, key: str) -> list[Sample]:
        return [r[key] for r in self.rounds if key in r and r[key].ok]

    def median_seconds(self, key: str) -> float | None:
        s = self.samples(key)
        return statistics.median(x.seconds for x in s) if s else None

    def median_mb(self, key: str) -> float | None:
        s = self.samples(key)
        return statistics.median(x.peak_mb for x in s) if s else None

    def ratio(self, key: str, ref: str, memory: bool = False) -> float | None:
        """Median over rounds of key/ref, pairing the two measurements of the same round."""
        pairs = [
            (r[key], r[ref])
            for r in self.rounds
            if key in r and ref in r and r[key].ok and r[ref].ok
        ]
        if not pairs:
            return None
        if memory:
            return statistics.median(a.peak_mb / b.peak_mb for a, b in pairs)
        return statistics.median(a.seconds / b.seconds for a, b in pairs)


def seqgen_command() -> list[str]:
    """The installed `seqgen` script next to this interpreter (a pyenv shim would add ~60 ms)."""
    beside = Path(sys.executable).with_name("seqgen")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("seqgen")
    return [found] if found else [sys.executable, "-m", "seqgen"]


def progress(text: str) -> None:
    """One overwritten status line on a terminal's stderr; nothing when stderr is a file."""
    if sys.stderr.isatty():
        print(f"\r{text:<40}", end="" if text else "\r", file=sys.stderr, flush=True)


def child_environment() -> dict[str, str]:
    """The environment of every timed command: this one, less PYTHONDONTWRITEBYTECODE, so the
    warm-up leaves `__pycache__` behind as it does for a user (with it set, every run compiled
    seqgen's ~100 modules from source: 0.03-0.04 s of `compile` under cProfile)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def measure(argv: tuple[str, ...], log: Path, cached: bool = False) -> tuple[Sample, str]:
    """Run argv as a fresh child; its wall time, peak RSS, and output when it failed.

    Without `cached`, seqgen's trace cache is off (SEQGEN_NO_CACHE), so every run traces.
    """
    env = dict(child_environment(), SEQGEN_CACHE_DIR=str(log.parent / "trace-cache"))
    if not cached:
        env["SEQGEN_NO_CACHE"] = "1"
    with open(log, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    failure = "" if code == 0 else f"exit {code}:\n" + log.read_text(errors="replace")[-2000:]
    return Sample(seconds, usage.ru_maxrss * RSS_UNIT / 2**20, code == 0), failure


def run_text(argv: list[str]) -> str:
    """stdout+stderr of a short command (used to detect what the CLI supports)."""
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    return done.stdout + done.stderr


def imports_torch(seqgen_args: list[str]) -> bool | None:
    """Whether `seqgen ARGS` imports torch (None if that could not be determined)."""
    done = subprocess.run(
        [sys.executable, "-c", TORCH_IMPORTED, *seqgen_args],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    last = done.stderr.strip().splitlines()[-1:] or [""]
    return {"True": True, "False": False}.get(last[0])


def write_specs(tmp: Path) -> dict[str, Path]:
    """The generated specs: a 10.7-billion-parameter MLP, 10- and 1000-layer stacks, and a
    2-layer LSTM classifier over a 100- and a 1000-step sample."""
    big = ["# 10 x Linear(32768, 32768): 10.7 billion parameters", "input 32768"]
    big += ["linear 32768", "relu"] * 10
    specs = {"big": big}
    for n in (10, 1000):
        specs[f"layers{n}"] = ["input 64"] + [
            "linear 64" if i % 2 == 0 else "relu" for i in range(n)
        ]
    for n in (100, 1000):
        specs[f"lstm{n}"] = [
            "model Tagger(vocab=1000, classes=5)",
            f"input ({n},) dtype=long",
            "embedding vocab 64",
            "lstm 128 num_layers=2 take=last",
            "linear classes",
        ]
    paths = {}
    for name, lines in specs.items():
        paths[name] = tmp / f"{name}.seq"
        paths[name].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return paths


def build_cases(tmp: Path) -> tuple[list[Case], dict[str, bool | None]]:
    """Every case, plus the torch-import check of the commands that must not import torch."""
    seqgen = seqgen_command()
    py = sys.executable
    specs = write_specs(tmp)
    out = OUT
    top_help = run_text([*seqgen, "--help"])
    has_check = "--check" in run_text([*seqgen, "new", "--help"])
    has_summary = any(line.split()[:1] == ["summary"] for line in top_help.splitlines())
    has_v2 = subprocess.run([py, "-c", V2_PROBE], cwd=REPO, capture_output=True).returncode == 0

    check_out = str(tmp / "uptodate")
    check_args = ["new", "--check", str(CNN_SPEC), "-o", check_out]
    check_skip = "" if has_check else "n/a (--check not implemented)"
    if has_check:  # outputs for --check to find up to date
        made = subprocess.run(
            [*seqgen, "new", "-q", str(CNN_SPEC), "-o", check_out], cwd=REPO, capture_output=True
        )
        check_skip = "" if made.returncode == 0 else "n/a (`seqgen new cnn.seq` failed)"

    no_torch = "no torch import"
    cases = [
        Case("torch", '`python -c "import torch"`', (py, "-c", "import torch"), "baseline"),
        Case(
            "torch_bare",
            "the same, ended by `os._exit(0)` (no interpreter teardown)",
            (py, "-c", "import os, torch; os._exit(0)"),
            "reference (the `seqgen` program skips the teardown)",
        ),
        Case(
            "cnn",
            "`seqgen new cnn.seq`",
            (*seqgen, "new", str(CNN_SPEC), "-o", out),
            "wall <= 1.5x import torch",
        ),
        Case("help", "`seqgen --help`", (*seqgen, "--help"), no_torch),
        Case("version", "`seqgen --version`", (*seqgen, "--version"), no_torch),
        Case(
            "check",
            "`seqgen new --check cnn.seq` (up to date)",
            (*seqgen, *check_args),
            no_torch,
            check_skip,
        ),
        Case(
            "big",
            "`seqgen new`, 10 x linear 32768 (10.7 B params)",
            (*seqgen, "new", "-q", str(specs["big"]), "-o", out),
            "peak <= 2.0x import torch",
        ),
        Case(
            "layers10",
            "`seqgen new`, 10 layers",
            (*seqgen, "new", "-q", str(specs["layers10"]), "-o", out),
            "reference for 1000 layers",
        ),
        Case(
            "layers1000",
            "`seqgen new`, 1000 layers",
            (*seqgen, "new", "-q", str(specs["layers1000"]), "-o", out),
            "wall <= 2.0x 10 layers",
        ),
        Case(
            "resnet50blocks",
            "`seqgen new resnet50blocks.seq` (50 block uses)",
            (*seqgen, "new", str(RESNET_SPEC), "-o", out),
            "wall <= 1.5x cnn.seq",
            "" if has_v2 else "n/a (needs spec v2)",
        ),
        Case(
            "resnet50",
            "`seqgen new resnet50.seq` (torchvision's ResNet-50)",
            (*seqgen, "new", "-q", str(RESNET50_SPEC), "-o", out),
            "wall <= 1.5x cnn.seq",
            "" if has_v2 else "n/a (needs spec v2)",
        ),
        Case(
            "efficientnet_b0",
            "`seqgen new efficientnet_b0.seq` (torchvision's EfficientNet-B0)",
            (*seqgen, "new", "-q", str(EFFICIENTNET_B0_SPEC), "-o", out),
            "reference (no goal)",
            "" if has_v2 else "n/a (needs spec v2)",
        ),
        Case(
            "text_lstm",
            "`seqgen new text_lstm.seq`",
            (*seqgen, "new", str(TEXT_LSTM_SPEC), "-o", out),
            "wall <= 1.3x cnn.seq",
        ),
        Case(
            "lstm100",
            "`seqgen new`, LSTM over 100 steps",
            (*seqgen, "new", "-q", str(specs["lstm100"]), "-o", out),
            "reference for 1000 steps",
        ),
        Case(
            "lstm1000",
            "`seqgen new`, LSTM over 1000 steps",
            (*seqgen, "new", "-q", str(specs["lstm1000"]), "-o", out),
            "wall <= 1.2x 100 steps",
        ),
        Case(
            "torchinfo",
            "torchinfo.summary, VGG-16 224x224",
            (py, "-c", TORCHINFO_VGG16),
            "reference for summary",
        ),
        Case(
            "summary",
            "`seqgen summary vgg16.seq`",
            (*seqgen, "summary", str(VGG16_SPEC)),
            "wall, peak <= 0.5x torchinfo",
            "" if has_summary else "n/a (summary not implemented)",
        ),
        Case(
            "cnn_cached",
            "`seqgen new cnn.seq`, trace cached",
            (*seqgen, "new", str(CNN_SPEC), "-o", out),
            "wall <= 0.2x import torch",
            cached=True,
        ),
        Case(
            "summary_cached",
            "`seqgen summary vgg16.seq`, trace cached",
            (*seqgen, "summary", str(VGG16_SPEC)),
            "wall, peak <= 0.5x torchinfo",
            "" if has_summary else "n/a (summary not implemented)",
            cached=True,
        ),
    ]
    torch_checks: dict[str, bool | None] = {
        "help": imports_torch(["--help"]),
        "version": imports_torch(["--version"]),
    }
    if not check_skip:
        torch_checks["check"] = imports_torch(check_args)
    return cases, torch_checks


def run_rounds(cases: list[Case], rounds: int, tmp: Path, warmup: bool) -> Results:
    """Every runnable case once per round, in a shuffled order; progress goes to stderr."""
    runnable = [c for c in cases if not c.skip]
    results = Results()
    log = tmp / "child.log"
    if warmup:  # fill the page cache and __pycache__ so round 1 is not an outlier
        for c in runnable:
            if c.key in ("torch", "cnn"):
                measure(tuple(str(tmp / "warmup") if a == OUT else a for a in c.argv), log)

    for c in runnable:
        if c.cached:  # fill seqgen's trace cache, so that the timed runs hit it
            measure(tuple(str(tmp / "warmup") if a == OUT else a for a in c.argv), log, True)
    rng = random.Random(0)
    fresh = 0
    for n in range(1, rounds + 1):
        order = runnable[:]
        rng.shuffle(order)
        this: dict[str, Sample] = {}
        for c in order:
            progress(f"[round {n}/{rounds}] {c.key}")
            fresh += 1
            out = str(tmp / f"out{fresh}")
            sample, failure = measure(tuple(out if a == OUT else a for a in c.argv), log, c.cached)
            this[c.key] = sample
            if failure and c.key not in results.errors:
                results.errors[c.key] = failure
        results.rounds.append(this)
    progress("")
    return results


def judge(case: Case, res: Results, torch_checks: dict[str, bool | None]) -> str:
    """The `met?` cell."""

    def verdict(ok: bool, detail: str) -> str:
        return f"{'yes' if ok else 'NO'} ({detail})"

    if case.key in torch_checks:
        imported = torch_checks[case.key]
        if imported is None:
            return "unknown"
        return verdict(not imported, "torch imported" if imported else "torch not imported")
    if case.key == "cnn":
        r = res.ratio(case.key, "torch")
        return verdict(r <= 1.5, f"{r:.2f}x") if r is not None else "-"
    if case.key == "torch_bare":
        r = res.ratio("cnn", case.key)
        return f"`new cnn.seq` {r:.2f}x this" if r is not None else "-"
    if case.key == "cnn_cached":
        r = res.ratio(case.key, "torch")
        return verdict(r <= 0.2, f"{r:.2f}x") if r is not None else "-"
    if case.key in ("resnet50blocks", "resnet50", "efficientnet_b0"):
        r = res.ratio(case.key, "cnn")
        if r is None:
            return "-"
        return (
            verdict(r <= 1.5, f"{r:.2f}x cnn.seq")
            if case.key != "efficientnet_b0"
            else f"{r:.2f}x cnn.seq"
        )
    if case.key == "text_lstm":
        r = res.ratio("text_lstm", "cnn")
        return verdict(r <= 1.3, f"{r:.2f}x cnn.seq") if r is not None else "-"
    if case.key == "lstm1000":
        r = res.ratio("lstm1000", "lstm100")
        return verdict(r <= 1.2, f"{r:.2f}x") if r is not None else "-"
    if case.key == "big":
        r = res.ratio("big", "torch", memory=True)
        return verdict(r <= 2.0, f"{r:.2f}x") if r is not None else "-"
    if case.key == "layers1000":
        r = res.ratio("layers1000", "layers10")
        return verdict(r <= 2.0, f"{r:.2f}x") if r is not None else "-"
    if case.key in ("summary", "summary_cached"):
        wall = res.ratio(case.key, "torchinfo")
        mem = res.ratio(case.key, "torchinfo", memory=True)
        if wall is None or mem is None:
            return "-"
        return verdict(wall <= 0.5 and mem <= 0.5, f"wall {wall:.2f}x, peak {mem:.2f}x")
    return "-"


HEADER = [
    "measurement",
    "median s",
    "ratio vs import torch",
    "peak MB",
    "memory ratio",
    "goal",
    "met?",
]


def table_rows(
    cases: list[Case], res: Results, torch_checks: dict[str, bool | None]
) -> list[list[str]]:
    """One row of cells per case, in the order of `cases`."""
    rows = []
    for c in cases:
        if c.skip:
            rows.append([c.label, c.skip, "", "", "", c.goal, "-"])
            continue
        if c.key in res.errors and not res.samples(c.key):
            first = res.errors[c.key].splitlines()[0]
            rows.append([c.label, f"FAILED ({first})", "", "", "", c.goal, "NO"])
            continue
        secs, mb = res.median_seconds(c.key), res.median_mb(c.key)
        wall_r, mem_r = res.ratio(c.key, "torch"), res.ratio(c.key, "torch", memory=True)
        rows.append(
            [
                c.label,
                f"{secs:.2f}" if secs is not None else "-",
                f"{wall_r:.2f}x" if wall_r is not None else "-",
                f"{mb:.0f}" if mb is not None else "-",
                f"{mem_r:.2f}x" if mem_r is not None else "-",
                c.goal,
                judge(c, res, torch_checks),
            ]
        )
    return rows


def render_text(rows: list[list[str]]) -> str:
    """An aligned plain-text table."""
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    numeric = {1, 2, 3, 4}

    def fmt(row: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in numeric else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))
        ).rstrip()

    return "\n".join([fmt(HEADER), fmt(["-" * w for w in widths]), *map(fmt, rows)])


def render_markdown(rows: list[list[str]]) -> str:
    """A markdown table, for BENCHMARKS.md."""
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join(["---", "---:", "---:", "---:", "---:", "---", "---"]) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def machine() -> str:
    """nproc, CPU model, python, torch and seqgen versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = run_text(
        [sys.executable, "-c", "import torch, seqgen; print(torch.__version__, seqgen.__version__)"]
    ).split()
    torch_v, seqgen_v = (versions + ["?", "?"])[:2]
    return (
        f"{os.cpu_count()} CPUs ({cpu}), Python {platform.python_version()}, "
        f"torch {torch_v}, seqgen {seqgen_v}, {platform.system()} {platform.release()}"
    )


# -- --profile: the cost of each stage of `seqgen new cnn.seq`, imports first.
PROFILE_CHILD = textwrap.dedent("""\
    import gc, resource, sys, time
    rows, last = [], [time.perf_counter(), 0.0]
    collecting = [0.0, 0.0]  # when the current collection started, the total so far
    def on_gc(phase, info):
        if phase == "start":
            collecting[0] = time.perf_counter()
        else:
            collecting[1] += time.perf_counter() - collecting[0]
    gc.callbacks.append(on_gc)
    def rss_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * RSS_UNIT / 2**20
    def mark(label):
        now, mb = time.perf_counter(), rss_mb()
        rows.append((label, now - last[0], mb - last[1]))
        last[0], last[1] = now, mb
    last[1] = rss_mb()
    import torch
    mark("import torch")
    import sympy
    mark("import sympy (plain `import torch` no longer loads it)")
    import black
    mark("import black")
    import jinja2, click
    mark("import jinja2 + click")
    from seqgen.cli import main
    mark("import seqgen")
    def run():
        try:
            main(["new", "-q", SPEC, "-o", OUT])
        except SystemExit:
            pass
    run()
    mark("seqgen new: parse, trace, render, black, write (1st call)")
    run()
    mark("the same again in the same process (2nd call)")
    dynamo = "torch._dynamo" in sys.modules
    mark(f"(torch._dynamo {'was' if dynamo else 'was not'} imported: a ShapeEnv or meta kernels)")
    rows.append(("(of the above: cyclic GC; the `seqgen` program pauses it)", collecting[1], 0.0))
    for label, secs, mb in rows:
        print(f"@stage\\t{secs:.4f}\\t{mb:.1f}\\t{label}")
""")


def profile(rounds: int, tmp: Path, markdown: bool) -> str:
    """Median seconds and RSS growth of each stage, over `rounds` fresh processes."""
    code = (
        f"RSS_UNIT = {RSS_UNIT}\nSPEC = {str(CNN_SPEC)!r}\nOUT = {str(tmp / 'profile')!r}\n"
        + PROFILE_CHILD
    )
    per_stage: dict[str, list[tuple[float, float]]] = {}
    for n in range(rounds):
        progress(f"[profile {n + 1}/{rounds}]")
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            env=dict(child_environment(), SEQGEN_NO_CACHE="1"),  # every call traces
        )
        for line in done.stdout.splitlines():
            if not line.startswith("@stage\t"):
                continue  # the CLI's own output
            _, secs, mb, label = line.split("\t", 3)
            per_stage.setdefault(label, []).append((float(secs), float(mb)))
    progress("")
    header = ["stage", "median s", "peak RSS +MB"]
    rows = [
        [
            label,
            f"{statistics.median(s for s, _ in v):.2f}",
            f"{statistics.median(m for _, m in v):.0f}",
        ]
        for label, v in per_stage.items()
    ]
    if markdown:
        return "\n".join(
            [
                "| " + " | ".join(header) + " |",
                "|---|---:|---:|",
                *("| " + " | ".join(r) + " |" for r in rows),
            ]
        )
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{r[0]:<{width}}  {r[1]:>6}  {r[2]:>5}" for r in [header, *rows])


def main() -> int:
    """Run the benchmarks (or the profile) and print the table; exit 1 if a command failed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds to run (default 5)")
    parser.add_argument("--quick", action="store_true", help="1 round, no warm-up")
    parser.add_argument("--markdown", action="store_true", help="print a markdown table")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead: time each stage of `seqgen new cnn.seq` (imports first)",
    )
    args = parser.parse_args()
    rounds = 1 if args.quick else max(1, args.runs)

    with tempfile.TemporaryDirectory(prefix="seqgen-bench-") as name:
        tmp = Path(name)
        if args.profile:
            print(profile(rounds, tmp, args.markdown))
            return 0
        started = time.perf_counter()
        cases, torch_checks = build_cases(tmp)
        results = run_rounds(cases, rounds, tmp, warmup=not args.quick)
        rows = table_rows(cases, results, torch_checks)
        took = time.perf_counter() - started

    print(f"Machine: {machine()}")
    print(f"{rounds} round(s), {took:.0f} s in all. Ratios: median of per-round ratios.\n")
    print(render_markdown(rows) if args.markdown else render_text(rows))
    for key, failure in results.errors.items():
        print(f"\n{key} failed at least once; first failure, {failure}", file=sys.stderr)
    return 1 if results.errors else 0


if __name__ == "__main__":
    sys.exit(main())
