"""Train the fraud model from a simulated history: ``python -m model.train``.

Steps, each with progress on the terminal:

1. simulate a labelled history (7 days of 10,000 accounts by default) unless
   one is already in ``--history``;
2. compute point-in-time features with :mod:`featurestore.offline`;
3. split by time: train on the earliest days, choose the review and block
   cut-offs on the next day (scores only, no labels), evaluate on the last
   day;
4. train the model, the same model without velocity features, and score the
   hand-written rules, and write the quality report;
5. refuse a model that does not beat both by ``--min-margin`` PR-AUC;
6. export to ONNX, check it against LightGBM, write the model card.

The same arguments give byte-identical ``model.onnx`` and card: the
simulation is seeded and LightGBM runs deterministically on a fixed thread
count.

Example:
    $ python -m model.train --days 7 --accounts 10000 --seed 7
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Final

import lightgbm as lgb
import numpy as np
import polars as pl
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from dataflows.errors import FraudflowError, ModelError
from dataflows.simulator.history import LABEL_FILE, TRANSACTION_FILE, write_history
from featurestore.definitions import FEATURE_NAMES, PROFILE_NAMES
from featurestore.offline import load_history, offline_features
from model.baseline import rules_score
from model.card import DataSummary, ModelCard
from model.report import Assessment, Candidate, write_report
from model.thresholds import (
    DEFAULT_ALERT_RATE,
    DEFAULT_BLOCK_RATE,
    choose_thresholds,
)
from model.training import (
    ROUNDS,
    evaluate,
    feature_matrix,
    fit_booster,
    predict,
    save_model,
    time_split,
)

logger = logging.getLogger(__name__)
console = Console(stderr=True)

DEFAULT_MODEL_DIR: Final = Path("model/artifacts")
DEFAULT_HISTORY_ROOT: Final = Path(".fraudflow/history")
#: PR-AUC the model must gain over each comparison to be saved.
DEFAULT_MIN_MARGIN: Final = 0.05

app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0])


@dataclass(frozen=True)
class Split:
    """Labelled feature rows cut by event time."""

    train: pl.DataFrame
    calibration: pl.DataFrame
    test: pl.DataFrame


@dataclass(frozen=True)
class Trained:
    """The boosters trained on one split."""

    model: lgb.Booster
    without_velocity: lgb.Booster


def ensure_history(directory: Path, days: int, accounts: int, seed: int) -> None:
    """Simulate a history into ``directory`` unless its transactions are there."""
    if (directory / TRANSACTION_FILE).exists():
        logger.info("using existing history dir=%s", directory)
        return
    logger.info("simulating days=%d accounts=%d seed=%d", days, accounts, seed)
    write_history(directory, days=days, accounts=accounts, seed=seed)


def labelled_features(directory: Path) -> tuple[pl.DataFrame, int]:
    """Features, labels and event time of every transaction, and the account count.

    Raises:
        ModelError: The history has no labels, or no fraud among them.
    """
    transactions, labels = load_history(directory)
    if labels is None:
        raise ModelError(
            f"history {str(directory)!r}: expected fraud labels in {LABEL_FILE!r}, "
            "got none; training needs a labelled history (simulate one with "
            "`python -m model.train --history NEW_DIR`)"
        )
    frame = offline_features(transactions, labels)
    frauds = int(frame.get_column("is_fraud").sum())
    if frauds == 0:
        raise ModelError(
            f"history {str(directory)!r}: expected some fraudulent transactions, "
            f"got 0 of {frame.height}"
        )
    times = transactions.select("txn_id", "event_time")
    frame = frame.join(times, on="txn_id", how="left", maintain_order="left")
    return frame, transactions.get_column("account_id").n_unique()


def split_by_time(frame: pl.DataFrame, eval_days: int, calibration_days: int) -> Split:
    """Cut off the test days, then the calibration days before them."""
    earlier, test = time_split(frame, eval_days)
    train, calibration = time_split(earlier, calibration_days)
    return Split(train=train, calibration=calibration, test=test)


def train_models(split: Split, rounds: int, progress: Progress) -> Trained:
    """Train the model and its no-velocity twin, showing one bar per booster."""
    labels = split.train.get_column("is_fraud").cast(pl.Int8).to_numpy()
    boosters = []
    for title, names in (("model", FEATURE_NAMES), ("no velocity", PROFILE_NAMES)):
        task = progress.add_task(f"training {title}", total=rounds)
        booster = fit_booster(
            feature_matrix(split.train, names),
            labels,
            names=names,
            rounds=rounds,
            callbacks=[lambda _env, task=task: progress.advance(task)],
        )
        boosters.append(booster)
    return Trained(*boosters)


def candidates(
    trained: Trained, split: Split, alert_rate: float, block_rate: float
) -> list[Candidate]:
    """Score the test days with each scorer; cut-offs come from calibration."""
    scorers = (
        ("model", lambda m: predict(trained.model, m)),
        ("no velocity", lambda m: _without_velocity(trained, m)),
        ("rules", rules_score),
    )
    found = []
    for name, score in scorers:
        calibration = score(feature_matrix(split.calibration))
        cuts = choose_thresholds(calibration, alert_rate, block_rate)
        found.append(Candidate(name, score(feature_matrix(split.test)), cuts.review))
    return found


def _without_velocity(trained: Trained, matrix: np.ndarray) -> np.ndarray:
    columns = [FEATURE_NAMES.index(name) for name in PROFILE_NAMES]
    return predict(trained.without_velocity, matrix[:, columns])


def check_margins(assessments: list[Assessment], min_margin: float) -> None:
    """Refuse a model that does not beat every comparison by ``min_margin``.

    Raises:
        ModelError: Naming the comparison and both PR-AUCs.
    """
    model, *others = assessments
    for other in others:
        if model.pr_auc - other.pr_auc < min_margin:
            raise ModelError(
                f"quality gate: expected PR-AUC at least {min_margin!r} above "
                f"{other.name!r} ({other.pr_auc:.4f}), got {model.pr_auc:.4f}"
            )


def event_time_bounds(frame: pl.DataFrame) -> tuple[datetime, datetime]:
    """Return the first and last event time of ``frame``."""
    times = frame.get_column("event_time")
    first, last = times.min(), times.max()
    if not isinstance(first, datetime) or not isinstance(last, datetime):
        got = f"{type(first).__name__} and {type(last).__name__}"
        raise ModelError(f"event_time: expected datetimes, got {got}")
    return first, last


def data_summary(split: Split, accounts: int, seed: int) -> DataSummary:
    """Describe the training and test windows of ``split``."""
    train_start, train_end = event_time_bounds(split.train)
    eval_start, eval_end = event_time_bounds(split.test)
    return DataSummary(
        train_start=train_start.isoformat(),
        train_end=train_end.isoformat(),
        eval_start=eval_start.isoformat(),
        eval_end=eval_end.isoformat(),
        train_rows=split.train.height,
        train_frauds=int(split.train.get_column("is_fraud").sum()),
        eval_rows=split.test.height,
        eval_frauds=int(split.test.get_column("is_fraud").sum()),
        days=(eval_end - train_start).days + 1,
        accounts=accounts,
        seed=seed,
    )


def _report_context(split: Split) -> str:
    first, last = event_time_bounds(split.test)
    frauds = int(split.test.get_column("is_fraud").sum())
    return (
        f"Held-out transactions from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} "
        f"UTC: {split.test.height:,}, of which {frauds:,} fraudulent. Each scorer "
        "flags transactions at or above a cut-off chosen on the calibration day "
        "before them for the same target share of traffic."
    )


@dataclass(frozen=True)
class Options:
    """What one training run does; see :func:`main` for each option."""

    history: Path
    model_dir: Path
    days: int
    accounts: int
    seed: int
    eval_days: int
    calibration_days: int
    alert_rate: float
    block_rate: float
    rounds: int
    min_margin: float


def run(options: Options) -> ModelCard:
    """Run the whole training job and return the saved model's card."""
    ensure_history(options.history, options.days, options.accounts, options.seed)
    frame, accounts = labelled_features(options.history)
    split = split_by_time(frame, options.eval_days, options.calibration_days)
    logger.info(
        "split rows train=%d calibration=%d test=%d",
        split.train.height,
        split.calibration.height,
        split.test.height,
    )
    with _progress() as progress:
        trained = train_models(split, options.rounds, progress)

    scored = candidates(trained, split, options.alert_rate, options.block_rate)
    options.model_dir.mkdir(parents=True, exist_ok=True)
    assessments = write_report(
        scored,
        split.test.get_column("is_fraud").cast(pl.Int8).to_numpy(),
        split.test.get_column("pattern").to_numpy(),
        options.model_dir,
        _report_context(split),
    )
    check_margins(assessments, options.min_margin)
    return _save(trained, split, scored[0], options, accounts)


def _save(
    trained: Trained,
    split: Split,
    model: Candidate,
    options: Options,
    accounts: int,
) -> ModelCard:
    calibration_scores = predict(trained.model, feature_matrix(split.calibration))
    cuts = choose_thresholds(calibration_scores, options.alert_rate, options.block_rate)
    test_labels = split.test.get_column("is_fraud").cast(pl.Int8).to_numpy()
    return save_model(
        trained.model,
        feature_matrix(split.train),
        data_summary(split, accounts, options.seed),
        evaluate(model.scores, test_labels, cuts),
        cuts,
        options.model_dir,
    )


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rounds"),
        console=console,
    )


@app.command()
def main(
    history: Annotated[
        Path | None,
        typer.Option(
            help="History directory; default derived from days/accounts/seed."
        ),
    ] = None,
    model_dir: Annotated[
        Path, typer.Option(help="Where model.onnx, the card and report go.")
    ] = DEFAULT_MODEL_DIR,
    days: Annotated[int, typer.Option(min=3, help="Days to simulate.")] = 7,
    accounts: Annotated[
        int, typer.Option(min=10, help="Accounts to simulate.")
    ] = 10_000,
    seed: Annotated[int, typer.Option(help="Seed of the simulation.")] = 7,
    eval_days: Annotated[int, typer.Option(min=1, help="Last days held out.")] = 1,
    calibration_days: Annotated[
        int, typer.Option(min=1, help="Days before those, for choosing cut-offs.")
    ] = 1,
    alert_rate: Annotated[
        float, typer.Option(help="Share of traffic to review or block.")
    ] = DEFAULT_ALERT_RATE,
    block_rate: Annotated[
        float, typer.Option(help="Share of traffic to block outright.")
    ] = DEFAULT_BLOCK_RATE,
    rounds: Annotated[int, typer.Option(min=1, help="Boosting rounds.")] = ROUNDS,
    min_margin: Annotated[
        float, typer.Option(help="PR-AUC the model must gain over each comparison.")
    ] = DEFAULT_MIN_MARGIN,
) -> None:
    """Simulate (if needed), train, evaluate, export and describe the model."""
    logging.basicConfig(
        level=logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    directory = history or DEFAULT_HISTORY_ROOT / f"d{days}-a{accounts}-s{seed}"
    options = Options(
        directory, model_dir, days, accounts, seed, eval_days,
        calibration_days, alert_rate, block_rate, rounds, min_margin,
    )  # fmt: skip
    try:
        card = run(options)
    except FraudflowError as exc:
        console.print(f"[red]training failed:[/red] {exc}")
        raise typer.Exit(code=1) from exc
    metrics = card.metrics
    console.print(
        f"model {card.version}: PR-AUC {metrics.pr_auc:.4f}, ROC-AUC "
        f"{metrics.roc_auc:.4f}, alert rate {metrics.alert_rate:.2%}, written to "
        f"{model_dir}"
    )


if __name__ == "__main__":
    app()
