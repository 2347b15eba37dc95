"""Score feature matrices with the exported model and turn scores into decisions.

:class:`Scorer` loads ``model.onnx`` and ``model_card.json`` from a directory
and refuses the pair unless the card describes that very file (its version is
the file's content hash) and lists exactly the features the code computes, in
the same order. Scoring a micro-batch is one ONNX Runtime call, on one thread
by default: the flow scales with processes, and extra threads per process
only fight over two cores.

A value that is NaN or infinite is replaced by the card's default for its
feature (the training median) before the model sees it, and counted, so a
broken feature shows up in metrics instead of in scores.

Example:
    >>> scorer = Scorer.load(Path("model/artifacts"))  # doctest: +SKIP
    >>> scores = scorer.score(matrix)  # doctest: +SKIP
    >>> scorer.decide(scores, matrix)[0]  # doctest: +SKIP
    Decision(decision='allow', reasons=())
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NamedTuple

import numpy as np
import onnxruntime as ort

from dataflows.errors import FeatureMismatch, ModelError
from featurestore.definitions import FEATURE_NAMES
from model.card import CARD_FILE, MODEL_FILE, ModelCard, read_card
from model.export import model_version, onnx_session
from model.reasons import ReasonBook
from model.thresholds import ALLOW, DECISIONS, Thresholds, decisions

logger = logging.getLogger(__name__)

FEATURE_COUNT: Final = len(FEATURE_NAMES)


class Decision(NamedTuple):
    """What to do with one transaction, and why.

    Attributes:
        decision: ``"allow"``, ``"review"`` or ``"block"``.
        reasons: Up to three human-readable reasons; empty when allowed.
    """

    decision: str
    reasons: tuple[str, ...] = ()


_ALLOWED: Final = Decision(ALLOW)


@dataclass(frozen=True)
class _Loaded:
    """One validated model file and card, ready to score."""

    card: ModelCard
    session: ort.InferenceSession
    defaults: np.ndarray
    reasons: ReasonBook
    signature: tuple[tuple[int, int], ...]


class Scorer:
    """The loaded model: scores, decisions, reasons, and safe hot reload.

    Build one with :meth:`load`. Not thread-safe while reloading; the flow
    owns one scorer per worker.

    Attributes:
        model_dir: Directory holding ``model.onnx`` and ``model_card.json``.
        threads: ONNX Runtime intra- and inter-op threads.
        replaced_total: Feature values replaced by defaults since loading.
        last_replaced: Feature values replaced in the latest :meth:`score`.
    """

    def __init__(self, model_dir: Path, loaded: _Loaded, threads: int = 1) -> None:
        self.model_dir = model_dir
        self.threads = threads
        self.replaced_total = 0
        self.last_replaced = 0
        self._loaded = loaded
        self._rejected: tuple[tuple[int, int], ...] | None = None

    @classmethod
    def load(cls, model_dir: Path | str, threads: int = 1) -> Scorer:
        """Load and validate the model in ``model_dir``.

        Raises:
            ModelError: A file is missing or corrupt, or the card does not
                describe the model file.
            FeatureMismatch: The model expects other features or another order.
        """
        directory = Path(model_dir)
        scorer = cls(directory, _load(directory, threads), threads)
        logger.info("model loaded version=%s dir=%s", scorer.version, directory)
        return scorer

    @property
    def card(self) -> ModelCard:
        """The card of the model in use."""
        return self._loaded.card

    @property
    def version(self) -> str:
        """The version of the model in use."""
        return self._loaded.card.version

    @property
    def thresholds(self) -> Thresholds:
        """The review and block cut-offs of the model in use."""
        return self._loaded.card.thresholds

    def score(self, matrix: np.ndarray) -> np.ndarray:
        """Return the fraud probability of each row, in one ONNX call.

        Args:
            matrix: ``[N, F]`` feature rows in :data:`FEATURE_NAMES` order.

        Returns:
            float32 ``[N]`` probabilities.

        Raises:
            FeatureMismatch: The matrix is not two-dimensional with ``F`` columns.
        """
        rows = self._clean(_as_rows(matrix))
        if len(rows) == 0:
            return np.empty(0, dtype=np.float32)
        loaded = self._loaded
        inputs = {loaded.card.input_name: rows}
        return loaded.session.run([loaded.card.output_name], inputs)[0]

    def decide(self, scores: np.ndarray, features: np.ndarray) -> list[Decision]:
        """Turn scores into decisions, with reasons for the flagged rows.

        Args:
            scores: ``[N]`` scores from :meth:`score`.
            features: The ``[N, F]`` rows they were scored from.

        Returns:
            One :class:`Decision` per row, in order.
        """
        chosen = decisions(scores, self.thresholds)
        result = [_ALLOWED] * len(chosen)
        flagged = np.flatnonzero(chosen)
        if flagged.size == 0:
            return result

        rows = self._clean(_as_rows(features)[flagged])
        explained = self._loaded.reasons.explain(rows)
        for i, reasons in zip(flagged, explained, strict=True):
            result[i] = Decision(DECISIONS[chosen[i]], reasons)
        return result

    def reload_if_changed(self) -> bool:
        """Load the model again if its files changed since it was loaded.

        A replacement that fails validation is refused once (and again only
        if the files change once more); the model in use stays.

        Returns:
            True when a new model was loaded.

        Raises:
            ModelError: The changed files cannot be used; the old model stays.
        """
        signature = _signature(self.model_dir)
        if signature in (self._loaded.signature, self._rejected):
            return False
        try:
            loaded = _load(self.model_dir, self.threads)
        except ModelError:
            self._rejected = signature
            logger.warning(
                "model reload refused; keeping version=%s", self.version, exc_info=True
            )
            raise
        previous, self._loaded = self.version, loaded
        logger.info("model reloaded version=%s previous=%s", self.version, previous)
        return True

    def _clean(self, rows: np.ndarray) -> np.ndarray:
        """Replace NaN and infinite values by the card's defaults, counting them."""
        bad = ~np.isfinite(rows)
        self.last_replaced = int(np.count_nonzero(bad))
        if not self.last_replaced:
            return rows
        self.replaced_total += self.last_replaced
        return np.where(bad, self._loaded.defaults, rows).astype(np.float32)


def _as_rows(matrix: np.ndarray) -> np.ndarray:
    rows = np.ascontiguousarray(matrix, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != FEATURE_COUNT:
        raise FeatureMismatch(
            f"scorer input: expected a [N, {FEATURE_COUNT}] matrix, "
            f"got shape {rows.shape!r}"
        )
    return rows


def _signature(model_dir: Path) -> tuple[tuple[int, int], ...]:
    """Modification time and size of the model and card files (0s if absent)."""
    stamps = []
    for name in (MODEL_FILE, CARD_FILE):
        try:
            stat = (model_dir / name).stat()
        except OSError:
            stamps.append((0, 0))
        else:
            stamps.append((stat.st_mtime_ns, stat.st_size))
    return tuple(stamps)


def _load(model_dir: Path, threads: int) -> _Loaded:
    signature = _signature(model_dir)
    card = read_card(model_dir / CARD_FILE)
    check_features(card.feature_names)
    onnx_bytes = _read_model(model_dir / card.model_file)

    actual = model_version(onnx_bytes)
    if actual != card.version:
        raise ModelError(
            f"model {str(model_dir / card.model_file)!r}: expected version "
            f"{card.version!r} from the card, got file hash {actual!r}"
        )
    session = onnx_session(onnx_bytes, threads)
    _check_signature(session, card)
    return _Loaded(
        card=card,
        session=session,
        defaults=_defaults(card),
        reasons=ReasonBook(card.reason_percentiles),
        signature=signature,
    )


def check_features(names: list[str] | tuple[str, ...]) -> None:
    """Check that ``names`` equals :data:`FEATURE_NAMES`, order included.

    Raises:
        FeatureMismatch: Naming the first difference, missing and extra names.
    """
    if tuple(names) == FEATURE_NAMES:
        return
    missing = [name for name in FEATURE_NAMES if name not in names]
    extra = [name for name in names if name not in FEATURE_NAMES]
    pairs = zip(names, FEATURE_NAMES, strict=False)
    first = next(
        (i for i, (got, want) in enumerate(pairs) if got != want),
        min(len(names), FEATURE_COUNT),
    )
    raise FeatureMismatch(
        f"model card feature_names: expected FEATURE_NAMES order, got a "
        f"difference at position {first}; missing {missing!r}, extra {extra!r}"
    )


def _read_model(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelError(f"model {str(path)!r}: cannot read: {exc}") from exc


def _check_signature(session: ort.InferenceSession, card: ModelCard) -> None:
    inputs, outputs = session.get_inputs(), session.get_outputs()
    input_shapes = [(i.name, i.shape[-1]) for i in inputs]
    if input_shapes != [(card.input_name, FEATURE_COUNT)]:
        raise FeatureMismatch(
            f"model inputs: expected [({card.input_name!r}, {FEATURE_COUNT})], "
            f"got {input_shapes!r}"
        )
    if [o.name for o in outputs] != [card.output_name]:
        raise ModelError(
            f"model outputs: expected [{card.output_name!r}], "
            f"got {[o.name for o in outputs]!r}"
        )


def _defaults(card: ModelCard) -> np.ndarray:
    missing = [name for name in FEATURE_NAMES if name not in card.defaults]
    if missing:
        raise ModelError(f"model card defaults: missing {missing!r}")
    return np.array([card.defaults[n] for n in FEATURE_NAMES], dtype=np.float32)
