"""Run every benchmark and print one summary table.

python -m bench              # realistic sizes, 3 rounds each (a few minutes)
python -m bench --quick      # smoke run
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from bench import consume, push
from bench._common import Result, base_parser, log, print_table


def main() -> None:
    parser = base_parser("Run the push and consume benchmarks; print one summary table.")
    parser.add_argument(
        "--json", type=Path, help="also write the results to this file (e.g. bench/results/x.json)"
    )
    args = parser.parse_args()
    results: list[Result] = []
    walls: list[str] = []
    started = time.perf_counter()
    for name, bench in (("push", push.run), ("consume", consume.run)):
        log(f"== {name}")
        section = time.perf_counter()
        results += bench(args.rounds, args.quick)
        walls.append(f"{name} {time.perf_counter() - section:.0f}s")
    total = time.perf_counter() - started
    print()
    print_table(results, f"zeroqueue benchmarks: median of {args.rounds} round(s)")
    print(f"wall time: {', '.join(walls)}, total {total:.0f}s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        rows = [asdict(r) | {"ratio": r.ratio} for r in results]
        args.json.write_text(json.dumps({"rounds": args.rounds, "results": rows}, indent=2))


if __name__ == "__main__":
    main()
