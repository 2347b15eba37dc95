"""Summarise a ``py-spy record -f raw`` profile of the flow by pipeline stage.

py-spy's raw output is one line per distinct stack, frames joined by ``;``
with the sample count last. A sample is charged to the first stage whose
function appears in its stack (innermost stage wins), so the table answers
"of the flow's wall time, how much went to decoding, state, scoring, the
database, the alert producer, Bytewax itself, or waiting for input".

Example:
    $ py-spy record -f raw --idle -o flow.txt -- python -m bench profile-run
    $ python -m bench.profile flow.txt
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Final

#: Stage name and the function names whose frames mark it, innermost first.
STAGES: Final = (
    ("postgres insert", ("ScoredRowWriter._insert",)),
    ("postgres other", ("_RowPartition.write_batch",)),
    ("alert producer", ("_MessagePartition.write_batch",)),
    ("redis read", ("ProfileStore.read_many",)),
    ("onnx score", ("Scorer.score",)),
    ("decide + reasons", ("Scorer.decide",)),
    ("rows + metrics", ("ScoreStep._rows", "ScoreStep._record")),
    ("score other", ("ScoreStep.__call__",)),
    ("mask", ("Masker.mask",)),
    ("decode", ("DecodeStep.__call__",)),
    ("velocity", ("VelocityLogic.on_batch",)),
    ("velocity snapshot", ("VelocityLogic.snapshot",)),
    ("kafka consume", ("_PartitionReader.next_batch",)),
    ("dead letters", ("DeadLetterStep.__call__",)),
)
#: Text of a frame present in every sample taken inside ``bytewax.run``: its
#: ``<module>`` frame, from which the Rust runtime calls back into Python.
FLOW_MARKERS: Final = ("<module> (run.py:",)
#: Frames of start-up work under the same ``<module>`` frame (imports, model
#: load), which is not the hot path.
START_UP: Final = ("_find_and_load", "_locate_dataflow")


def parse_raw(lines: Iterable[str]) -> Counter[tuple[str, ...]]:
    """Return sample counts per stack of frames (outermost first)."""
    stacks: Counter[tuple[str, ...]] = Counter()
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks[tuple(stack.split(";"))] += int(count)
    return stacks


def _name(frame: str) -> str:
    return frame.split(" (", 1)[0]


def _in_flow(frames: tuple[str, ...], markers: tuple[str, ...]) -> bool:
    text = ";".join(frames)
    if any(frame in text for frame in START_UP):
        return False
    return any(marker in text for marker in markers)


def stage_of(frames: tuple[str, ...]) -> str:
    """Return the stage a stack belongs to, or ``bytewax + idle``."""
    present = {_name(frame) for frame in frames}
    for stage, functions in STAGES:
        if present.intersection(functions):
            return stage
    return "bytewax + idle"


def breakdown(
    stacks: Counter[tuple[str, ...]], markers: tuple[str, ...] = FLOW_MARKERS
) -> dict[str, float]:
    """Return each stage's share (0-1) of the samples taken inside the flow.

    Only the main thread's samples inside the dataflow's run count: the
    Bytewax worker runs there, and other threads (librdkafka's, the pool's)
    mostly sleep.
    """
    by_stage: Counter[str] = Counter()
    for frames, count in stacks.items():
        if _in_flow(frames, markers):
            by_stage[stage_of(frames)] += count
    total = sum(by_stage.values()) or 1
    return {stage: count / total for stage, count in by_stage.most_common()}


def top_functions(
    stacks: Counter[tuple[str, ...]],
    limit: int = 25,
    markers: tuple[str, ...] = FLOW_MARKERS,
) -> list[tuple[str, float]]:
    """Return the functions most often on top of a flow stack, by share."""
    leaves: Counter[str] = Counter()
    for frames, count in stacks.items():
        if _in_flow(frames, markers):
            leaves[frames[-1]] += count
    total = sum(leaves.values()) or 1
    return [(name, count / total) for name, count in leaves.most_common(limit)]


def main(path: Path, markers: tuple[str, ...] = FLOW_MARKERS) -> None:
    """Print the stage table and the hottest leaf functions of one profile."""
    stacks = parse_raw(path.read_text().splitlines())
    for stage, share in breakdown(stacks, markers).items():
        print(f"{share:6.1%}  {stage}")
    print()
    for name, share in top_functions(stacks, markers=markers):
        print(f"{share:6.1%}  {name}")


if __name__ == "__main__":
    import sys

    main(Path(sys.argv[1]), tuple(sys.argv[2:]) or FLOW_MARKERS)
