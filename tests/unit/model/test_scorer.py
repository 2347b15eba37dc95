from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from synthetic_model import column, synthetic_rows, train_into

from dataflows.errors import FeatureMismatch, ModelError
from featurestore.definitions import FEATURE_NAMES
from model.card import CARD_FILE, MODEL_FILE
from model.reasons import COMBINED_REASON, MAX_REASONS
from model.scorer import Decision, Scorer


def edit_card(model_dir: Path, **changes: object) -> None:
    path = model_dir / CARD_FILE
    card = json.loads(path.read_text())
    card.update(changes)
    path.write_text(json.dumps(card))


def typical_row() -> np.ndarray:
    row = np.median(synthetic_rows(2_000, seed=3)[0], axis=0)
    return row.astype(np.float32)


def test_scores_are_one_probability_per_row(model_dir: Path) -> None:
    rows, _ = synthetic_rows(300, seed=5)

    scores = Scorer.load(model_dir).score(rows)

    assert scores.shape == (300,)
    assert scores.dtype == np.float32
    assert np.all((scores >= 0) & (scores <= 1))


def test_an_empty_batch_scores_to_an_empty_array(model_dir: Path) -> None:
    empty = np.empty((0, len(FEATURE_NAMES)), dtype=np.float32)

    assert Scorer.load(model_dir).score(empty).shape == (0,)


def test_a_card_listing_features_in_another_order_is_refused(model_dir: Path) -> None:
    swapped = list(FEATURE_NAMES)
    swapped[0], swapped[1] = swapped[1], swapped[0]
    edit_card(model_dir, feature_names=swapped)

    with pytest.raises(FeatureMismatch, match="position 0"):
        Scorer.load(model_dir)


def test_a_card_missing_a_feature_names_it(model_dir: Path) -> None:
    edit_card(model_dir, feature_names=list(FEATURE_NAMES[:-1]))

    with pytest.raises(FeatureMismatch, match="prior_chargebacks"):
        Scorer.load(model_dir)


def test_a_matrix_of_the_wrong_width_is_refused(model_dir: Path) -> None:
    scorer = Scorer.load(model_dir)

    with pytest.raises(FeatureMismatch, match="expected a \\[N, 20\\] matrix"):
        scorer.score(np.zeros((4, len(FEATURE_NAMES) - 1), dtype=np.float32))


def test_a_corrupt_model_file_is_refused(model_dir: Path) -> None:
    (model_dir / MODEL_FILE).write_bytes(b"\x08\x07garbage, not a protobuf graph")

    with pytest.raises(ModelError, match="expected version"):
        Scorer.load(model_dir)


def test_a_corrupt_file_whose_hash_matches_the_card_is_refused(
    model_dir: Path,
) -> None:
    from model.export import model_version

    garbage = b"\x08\x07garbage, not a protobuf graph"
    (model_dir / MODEL_FILE).write_bytes(garbage)
    edit_card(model_dir, version=model_version(garbage))

    with pytest.raises(ModelError, match="ONNX Runtime refused"):
        Scorer.load(model_dir)


def test_a_missing_model_file_is_refused(model_dir: Path) -> None:
    (model_dir / MODEL_FILE).unlink()

    with pytest.raises(ModelError, match="cannot read"):
        Scorer.load(model_dir)


def test_an_unreadable_card_is_refused(model_dir: Path) -> None:
    (model_dir / CARD_FILE).write_text("{not json")

    with pytest.raises(ModelError, match="model card"):
        Scorer.load(model_dir)


def test_nan_and_infinite_values_score_as_the_defaults(model_dir: Path) -> None:
    scorer = Scorer.load(model_dir)
    defaults = np.array([scorer.card.defaults[n] for n in FEATURE_NAMES], np.float32)
    broken = typical_row()
    broken[column("amount_vs_mean")] = np.nan
    broken[column("txn_count_1h")] = np.inf
    repaired = broken.copy()
    repaired[column("amount_vs_mean")] = defaults[column("amount_vs_mean")]
    repaired[column("txn_count_1h")] = defaults[column("txn_count_1h")]

    scores = scorer.score(np.stack([broken, repaired]))

    assert np.isfinite(scores).all()
    assert scores[0] == scores[1]
    assert scorer.last_replaced == 2
    scorer.score(np.stack([broken, broken]))
    assert scorer.replaced_total == 6


def test_decisions_follow_the_thresholds(model_dir: Path) -> None:
    scorer = Scorer.load(model_dir)
    cuts = scorer.thresholds
    rows = np.stack([typical_row()] * 4)
    scores = np.array([0.0, cuts.review, np.nextafter(cuts.block, 0), cuts.block])

    decided = [d.decision for d in scorer.decide(scores, rows)]

    assert decided == ["allow", "review", "review", "block"]


def test_allowed_rows_carry_no_reasons(model_dir: Path) -> None:
    scorer = Scorer.load(model_dir)

    decided = scorer.decide(np.zeros(2), np.stack([typical_row()] * 2))

    assert decided == [Decision("allow"), Decision("allow")]


def test_reasons_name_the_most_unusual_features(model_dir: Path) -> None:
    scorer = Scorer.load(model_dir)
    row = typical_row()
    row[column("txn_count_1m")] = 9
    row[column("amount_vs_mean")] = 14.2
    row[column("new_country")] = 1

    (decision,) = scorer.decide(np.array([1.0]), row[None, :])

    assert decision.decision == "block"
    assert set(decision.reasons) == {
        "9 transactions in the last minute",
        "amount 14x the account's usual",
        "first transaction from this country",
    }


def test_no_more_than_three_reasons_are_given(model_dir: Path) -> None:
    scorer = Scorer.load(model_dir)
    row = typical_row()
    for name, value in [
        ("txn_count_1m", 9),
        ("txn_count_10m", 12),
        ("amount_vs_mean", 30),
        ("new_device", 1),
        ("new_country", 1),
        ("prior_chargebacks", 2),
    ]:
        row[column(name)] = value

    (decision,) = scorer.decide(np.array([1.0]), row[None, :])

    assert len(decision.reasons) == MAX_REASONS


def test_a_flagged_typical_row_gets_the_combined_reason(model_dir: Path) -> None:
    scorer = Scorer.load(model_dir)

    (decision,) = scorer.decide(np.array([1.0]), typical_row()[None, :])

    assert decision.reasons == (COMBINED_REASON,)


def test_reload_without_changes_keeps_the_model(model_dir: Path) -> None:
    scorer = Scorer.load(model_dir)

    assert scorer.reload_if_changed() is False


def test_a_corrupt_replacement_is_refused_and_the_old_model_kept(
    model_dir: Path,
) -> None:
    scorer = Scorer.load(model_dir)
    rows, _ = synthetic_rows(50, seed=9)
    before = scorer.score(rows)
    (model_dir / MODEL_FILE).write_bytes(b"truncated")

    with pytest.raises(ModelError):
        scorer.reload_if_changed()

    assert scorer.reload_if_changed() is False
    np.testing.assert_array_equal(scorer.score(rows), before)


def test_a_valid_replacement_is_loaded(model_dir: Path, tmp_path: Path) -> None:
    scorer = Scorer.load(model_dir)
    old_version = scorer.version
    replacement = tmp_path / "replacement"
    replacement.mkdir()
    train_into(replacement, seed=21, rounds=12)
    for name in (MODEL_FILE, CARD_FILE):
        os.replace(replacement / name, model_dir / name)

    assert scorer.reload_if_changed() is True
    assert scorer.version != old_version
    assert scorer.version == Scorer.load(model_dir).version


def test_a_quick_repeat_is_named_in_seconds(model_dir: Path) -> None:
    scorer = Scorer.load(model_dir)
    row = typical_row()
    row[column("seconds_since_prev")] = 1

    (decision,) = scorer.decide(np.array([1.0]), row[None, :])

    assert "only 1 second after the previous transaction" in decision.reasons
