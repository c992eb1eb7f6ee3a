"""Long-running fuzzer: parse (and trace_spec) must end every input in a result or a SeqgenError.

    python fuzz/fuzz_check.py --mode parse --examples 100000   # parser only: fast
    python fuzz/fuzz_check.py --mode check --seconds 600       # parse + trace_spec
    python fuzz/fuzz_check.py --engine atheris --seconds 600   # coverage-guided; needs atheris

The hypothesis engine draws from the grammar-aware strategy of tests/test_fuzz.py; the atheris
engine mutates bytes, seeded with the example specs. Any other exception, or an input that runs
past --timeout, is a crasher: its text goes to fuzz/crashers/<signature>-<input>.seq and its
traceback next to it (.txt), a few inputs per distinct signature. The last line printed is
"N inputs, K crashers".
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KEEP_PER_SIGNATURE = 3


class _Timeout(BaseException):
    """Raised by SIGALRM when one input runs past --timeout."""


def _on_alarm(signum: int, frame: object) -> None:
    raise _Timeout()


class Fuzzer:
    """Runs inputs through the contract check, counting outcomes and saving crashers."""

    def __init__(self, mode: str, timeout: float, crashers: Path) -> None:
        sys.path.insert(0, str(ROOT / "tests"))
        from test_fuzz import check_contract, known_trace_bug  # the contract the tests check

        self.check: Callable[[str, bool], str] = check_contract
        self.known = known_trace_bug
        self.trace = mode == "check"
        self.timeout = timeout
        self.crashers = crashers
        self.inputs = 0
        self.crashes = 0
        self.outcomes: Counter[str] = Counter()
        self.saved: Counter[str] = Counter()
        self.signatures: dict[str, str] = {}

    def run(self, text: str) -> None:
        """Check one input; never raises (except KeyboardInterrupt)."""
        self.inputs += 1
        if self.timeout:
            signal.setitimer(signal.ITIMER_REAL, self.timeout)
        try:
            self.outcomes[self.check(text, self.trace)] += 1
        except KeyboardInterrupt:
            raise
        except BaseException as e:
            signal.setitimer(signal.ITIMER_REAL, 0)  # saving it must not be interrupted
            self.crashed(text, e)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def crashed(self, text: str, e: BaseException) -> None:
        self.crashes += 1
        if isinstance(e, _Timeout):
            summary = f"timeout: ran past {self.timeout}s"
            sig_text = "timeout"
        else:
            frames = [f for f in traceback.extract_tb(e.__traceback__) if "seqgen" in f.filename]
            where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
            message = re.sub(r"\d+", "N", str(e).splitlines()[0] if str(e) else "")[:80]
            known = self.known(e)
            summary = f"{type(e).__name__} at {where}: {message}" + (" [known]" if known else "")
            sig_text = f"{type(e).__name__}|{where}|{message}"
        sig = hashlib.sha1(sig_text.encode()).hexdigest()[:10]
        self.outcomes["crash"] += 1
        if sig not in self.signatures:
            self.signatures[sig] = summary
            print(f"crash {sig}: {summary}", flush=True)
        if self.saved[sig] >= KEEP_PER_SIGNATURE:
            return
        self.saved[sig] += 1
        self.crashers.mkdir(parents=True, exist_ok=True)
        name = f"{sig}-{hashlib.sha1(text.encode('utf-8', 'surrogatepass')).hexdigest()[:10]}"
        (self.crashers / f"{name}.seq").write_bytes(text.encode("utf-8", "surrogatepass"))
        detail = "".join(traceback.format_exception(e))[-6000:]
        (self.crashers / f"{name}.txt").write_text(f"{summary}\n\n{detail}", encoding="utf-8")

    def report(self, seconds: float) -> None:
        rate = self.inputs / seconds if seconds else 0.0
        print(f"outcomes: {dict(self.outcomes.most_common())}")
        for sig, summary in self.signatures.items():
            print(f"  {sig}: {summary}")
        print(f"{len(self.signatures)} distinct crash signatures; {rate:.0f} inputs/s")
        print(f"{self.inputs} inputs, {self.crashes} crashers", flush=True)


class Mutator:
    """Cheap random edits of a drawn spec: hypothesis draws slowly, the parser runs fast."""

    def __init__(self, seed: int | None) -> None:
        from test_fuzz import COMMON_LAYERS, NUMBER_TEXTS, ODD_NAMES, ODD_TEXTS, PARAM_NAMES

        self.rng = random.Random(seed)
        self.vocab = [
            *NUMBER_TEXTS,
            *ODD_TEXTS,
            *ODD_NAMES,
            *PARAM_NAMES,
            *COMMON_LAYERS,
            "repeat 2:",
            "model M(a=1)",
            "input 3x8x8",
            "\n",
            "\n  ",
            "=",
            "k=3",
            "(",
            ")",
            "'",
            "#",
            " ",
        ]
        self.pool: list[str] = []

    def mutate(self, text: str) -> str:
        rng = self.rng
        for _ in range(rng.randint(1, 4)):
            i, j = sorted(rng.randint(0, len(text)) for _ in range(2))
            op = rng.randrange(7)
            if op == 0:
                text = text[:i] + rng.choice(self.vocab) + text[i:]
            elif op == 1:
                text = text[:i] + text[j:]
            elif op == 2:
                text = text[:j] + text[i:j] + text[j:]
            elif op == 3:
                text = (
                    text[:i]
                    + chr(
                        rng.choice(
                            [
                                rng.randint(0, 127),
                                rng.randint(128, 0xD7FF),
                                rng.randint(0xE000, 0x10FFFF),
                            ]
                        )
                    )
                    + text[i + 1 :]
                )
            elif op == 4 and self.pool:
                other = rng.choice(self.pool)
                k = rng.randint(0, len(other))
                text = text[:i] + other[k : k + rng.randint(1, 40)] + text[j:]
            elif op == 5:
                lines = text.split("\n")
                rng.shuffle(lines)
                text = "\n".join(lines)
            else:
                text = re.sub(
                    r"\d+",
                    lambda m: rng.choice([m.group(), "0", "-1", str(2**63), "9" * 4400, "1e999"]),
                    text,
                    count=1,
                )
        if len(self.pool) < 200:
            self.pool.append(text)
        else:
            self.pool[rng.randrange(200)] = text
        return text


def run_hypothesis(
    fuzzer: Fuzzer, done: Callable[[], bool], seed: int | None, mutations: int
) -> None:
    """Draw from the tests' strategy in batches until `done()`; check each draw and mutants."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import seed as hypothesis_seed
    from test_fuzz import spec_texts

    mutator = Mutator(seed)
    batch = 0
    while not done():

        @settings(
            max_examples=500,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(spec_texts())
        def one(text: str) -> None:
            for i in range(mutations + 1):
                if done():
                    return
                fuzzer.run(text if i == 0 else mutator.mutate(text))

        if seed is not None:
            one = hypothesis_seed(seed + batch)(one)
        one()
        batch += 1


def run_atheris(fuzzer: Fuzzer, done: Callable[[], bool], finish: Callable[[], None]) -> None:
    """Coverage-guided byte mutation (libFuzzer); returns only through `finish` and os._exit."""
    import atheris

    # libFuzzer writes new inputs into its corpus folder: seed a scratch copy, never the sources
    corpus = Path(tempfile.mkdtemp(prefix="seqgen-corpus-"))
    for i, spec in enumerate(
        sorted(ROOT.glob("generated_examples/*.seq")) + sorted(ROOT.glob("tests/bad_specs/*.seq"))
    ):
        shutil.copy(spec, corpus / f"{i}-{spec.name}")

    def one(data: bytes) -> None:
        if done():
            finish()
            shutil.rmtree(corpus, ignore_errors=True)
            os._exit(1 if fuzzer.crashes else 0)
        fuzzer.run(data.decode("utf-8", errors="replace"))  # keeps the seeds' text intact

    atheris.Setup([sys.argv[0], "-rss_limit_mb=8192", "-max_len=4096", str(corpus)], one)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    """Fuzz until the budget is spent and print the counts; exit 1 if anything crashed."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--mode",
        choices=["parse", "check"],
        default="check",
        help="parse only, or parse + trace_spec (default)",
    )
    ap.add_argument("--engine", choices=["hypothesis", "atheris"], default="hypothesis")
    budget = ap.add_mutually_exclusive_group()
    budget.add_argument("--seconds", type=float, help="stop after this long")
    budget.add_argument("--examples", type=int, help="stop after this many inputs")
    ap.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="seconds one input may take before it counts as a crasher (0: none)",
    )
    ap.add_argument(
        "--mutations",
        type=int,
        help="random edits checked per drawn input (default: 50 parse, 2 check)",
    )
    ap.add_argument("--seed", type=int, help="hypothesis seed (first batch; later ones add 1)")
    ap.add_argument(
        "--crashers",
        type=Path,
        default=HERE / "crashers",
        help="where crashing inputs are saved (default: fuzz/crashers)",
    )
    args = ap.parse_args(argv)
    if args.seconds is None and args.examples is None:
        args.seconds = 60.0

    warnings.filterwarnings("ignore")
    logging.disable(logging.ERROR)  # torch logs the meta-kernel errors the tracer turns into words
    if args.engine == "atheris":
        import atheris

        with atheris.instrument_imports(include=["seqgen"]):
            import seqgen.lang.parser

            if args.mode == "check":
                import seqgen.trace.model
    fuzzer = Fuzzer(args.mode, args.timeout, args.crashers)
    signal.signal(signal.SIGALRM, _on_alarm)
    if args.mode == "check":
        import seqgen.trace.model  # noqa: F401 - import torch before the clock starts
    start = time.monotonic()
    last = [start]

    def done() -> bool:
        now = time.monotonic()
        if now - last[0] > 30:
            last[0] = now
            print(f"... {fuzzer.inputs} inputs, {fuzzer.crashes} crashers", flush=True)
        if args.examples is not None:
            return fuzzer.inputs >= args.examples
        return now - start >= args.seconds

    def finish() -> None:
        fuzzer.report(time.monotonic() - start)

    print(f"fuzzing {args.mode} with {args.engine}, crashers go to {args.crashers}", flush=True)
    try:
        if args.engine == "atheris":
            run_atheris(fuzzer, done, finish)
        else:
            mutations = (
                args.mutations
                if args.mutations is not None
                else (50 if args.mode == "parse" else 2)
            )
            run_hypothesis(fuzzer, done, args.seed, mutations)
    except KeyboardInterrupt:
        print("interrupted")
    finish()
    return 1 if fuzzer.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
