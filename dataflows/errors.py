"""Errors raised by fraudflow, and whether retrying can help.

Every error the pipeline raises on purpose derives from one base class, so a
sink or an operator can decide between retrying and dead-lettering by type::

    FraudflowError
    ├── InvalidTransaction        (not retriable: the record goes to the DLQ)
    ├── ConfigurationError        (not retriable: the process refuses to start)
    ├── ModelError                (not retriable: the model is refused)
    │   └── FeatureMismatch
    └── DependencyUnavailable     (retriable: back off and try again)
        ├── FeatureStoreUnavailable
        ├── DatabaseUnavailable
        └── BrokerUnavailable

Library exceptions are converted at the boundary with ``raise ... from exc`` so
the original cause stays attached.
"""

from __future__ import annotations


class FraudflowError(Exception):
    """Base class of every error fraudflow raises on purpose."""

    retriable: bool = False


class InvalidTransaction(FraudflowError):
    """A transaction record that cannot be decoded or fails validation.

    Attributes:
        field: The JSON field at fault, or ``"$"`` when the whole payload is.
        reason: A short, stable machine-readable reason (a metric label).
        detail: A human-readable explanation; never contains the raw value of
            a personal field.
    """

    def __init__(self, field: str, reason: str, detail: str) -> None:
        self.field = field
        self.reason = reason
        self.detail = detail
        super().__init__(f"invalid transaction: {field}: {reason}: {detail}")


class ConfigurationError(FraudflowError):
    """Settings that would make the process unsafe or unable to run."""


class ModelError(FraudflowError):
    """A model file or model card that cannot be used."""


class FeatureMismatch(ModelError):
    """The model expects other features, or another order, than the code makes."""


class DependencyUnavailable(FraudflowError):
    """A service the pipeline needs did not answer; trying again may work."""

    retriable = True


class FeatureStoreUnavailable(DependencyUnavailable):
    """Redis did not answer a feature read or write."""


class DatabaseUnavailable(DependencyUnavailable):
    """PostgreSQL refused or dropped a connection or a write."""


class BrokerUnavailable(DependencyUnavailable):
    """Kafka did not confirm delivery of a message in time."""
