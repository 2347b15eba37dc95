"""Synthetic, labelled card transactions for tests, training and load.

:class:`TransactionSimulator` generates a seeded, endless stream of
``(Transaction, Label)`` pairs for a population of card holders with stable
habits, with a few percent of labelled fraud episodes mixed in;
:func:`write_history` stores days of it as Parquet for training, and
``python -m dataflows.simulator`` produces it to Kafka at a chosen rate.

Example:
    >>> from itertools import islice
    >>> pairs = list(islice(TransactionSimulator(seed=3, accounts=50).stream(), 5))
    >>> len(pairs)
    5
"""

from dataflows.simulator.fraud import PATTERNS, SPECS, Label
from dataflows.simulator.generator import (
    DEFAULT_FRAUD_RATE,
    DEFAULT_START,
    Batch,
    TransactionSimulator,
)
from dataflows.simulator.history import write_history

__all__ = [
    "DEFAULT_FRAUD_RATE",
    "DEFAULT_START",
    "PATTERNS",
    "SPECS",
    "Batch",
    "Label",
    "TransactionSimulator",
    "write_history",
]
