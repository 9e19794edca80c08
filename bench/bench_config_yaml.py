"""Config YAML parsing: dl-driver's reader (libyaml parser, duplicate-key check) against yaml.safe_load.

yaml.safe_load is PyYAML's pure-Python loader, the one Hydra/OmegaConf (and so DLIO) parse configs with.
One run: every file of the upstream corpus (tests/data/upstream/), each parsed ROUNDS times by both, the
two alternating per round; the best round of each counts. Prints both times and the ratio.

    .venv/bin/python bench/bench_config_yaml.py [--rounds 5]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import yaml

from dldriver.config.yamlread import parse_yaml

CORPUS = Path(__file__).parents[1] / "tests" / "data" / "upstream"


def _seconds(parse, texts) -> float:
    t0 = time.perf_counter()
    for text in texts:
        parse(text)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    texts = [p.read_text() for p in sorted(CORPUS.glob("*/*.yaml"))] * 10
    ours, reference = [], []
    for _ in range(args.rounds):
        ours.append(_seconds(parse_yaml, texts))
        reference.append(_seconds(yaml.safe_load, texts))
    print(f"{len(texts)} parses per round, best of {args.rounds} rounds")
    print(f"yaml.safe_load: {min(reference):.3f} s; dl-driver parse_yaml: {min(ours):.3f} s; "
          f"ratio {min(reference) / min(ours):.2f}x")


if __name__ == "__main__":
    main()
