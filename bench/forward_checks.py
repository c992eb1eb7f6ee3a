#!/usr/bin/env python
"""The cost of the input checks at the top of a generated forward, as a ratio.

Times the committed generated_examples/cnn.py at batch 1 on the CPU (one thread), in eval mode
under torch.inference_mode: `model(x)` (the checks, then the layers) against the same call on a
subclass whose forward is the generated one with the checks stripped (`self.model(x)`), holding
the same weights. Each round times both, in alternating order, over the same number of calls;
the ratio reported is the median of the per-round ratios.

    python bench/forward_checks.py            # 21 rounds of 2000 calls
    python bench/forward_checks.py --quick    # 5 rounds of 500
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent


def seconds(call: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, calls = (5, 500) if args.quick else (21, 2000)
    sys.path.insert(0, str(REPO / "generated_examples"))
    from cnn import CNN

    torch.set_num_threads(1)

    class UncheckedCNN(CNN):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.model(x)
            return out

    model = CNN().eval()
    stripped = UncheckedCNN().eval()
    stripped.load_state_dict(model.state_dict())
    x = torch.randn(1, 3, 32, 32)
    checked = lambda: model(x)  # noqa: E731
    unchecked = lambda: stripped(x)  # noqa: E731
    ratios, with_checks, without = [], [], []
    with torch.inference_mode():
        seconds(checked, calls // 5)  # warm-up
        seconds(unchecked, calls // 5)
        for i in range(rounds):
            pair = [checked, unchecked] if i % 2 == 0 else [unchecked, checked]
            times = {id(f): seconds(f, calls) for f in pair}
            a, b = times[id(checked)], times[id(unchecked)]
            ratios.append(a / b)
            with_checks.append(a / calls)
            without.append(b / calls)
    print(f"torch {torch.__version__}, CNN (generated_examples/cnn.py), batch 1, 1 thread, CPU")
    print(f"forward with checks:    {statistics.median(with_checks) * 1e6:8.1f} us/call")
    print(f"checks stripped:        {statistics.median(without) * 1e6:8.1f} us/call")
    print(f"ratio (median of {rounds} rounds of {calls} calls): {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
