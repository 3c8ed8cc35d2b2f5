"""Evaluation protocols: which rows are held out in each fold or partition.

A fold names a column (``speaker``, ``session`` or ``split``) and the values of that column that
form its test set; the training set is every other row, or only ``train_values`` when given
(official partitions such as MSP-Podcast Train/Development/Test1). Keeping folds as data makes
every report state exactly the protocol that produced its numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Fold:
    name: str
    column: str
    test_values: list[str]
    train_values: list[str] | None = None
    validation_values: list[str] | None = None

    def split(self, column_values: list[str]) -> tuple[list[int], list[int]]:
        """Row indices (train, test) for a list of this fold's column values."""
        test = set(self.test_values)
        train = None if self.train_values is None else set(self.train_values)
        test_idx = [i for i, v in enumerate(column_values) if v in test]
        train_idx = [
            i for i, v in enumerate(column_values) if v not in test and (train is None or v in train)
        ]
        return train_idx, test_idx


@dataclass
class Protocol:
    name: str
    description: str
    classes: list[str]
    folds: list[Fold] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Protocol":
        return cls(
            name=data["name"],
            description=data["description"],
            classes=list(data["classes"]),
            folds=[Fold(**f) for f in data["folds"]],
        )
