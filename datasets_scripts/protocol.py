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


class FoldCoverageError(ValueError):
    """A fold whose training part lacks a class (or whose test part is empty): its numbers would mislead."""


def check_folds_cover_classes(dataset, protocol: Protocol, allow_missing: bool = False) -> dict[str, list[str]]:
    """Every fold's training part must hold every class, and its test part at least one clip.

    A class with no training clips in a fold (e.g. all its clips come from the one speaker that the
    fold holds out) cannot be learnt there: the fold's UA and the generator's Q-accuracy would be
    reported as results although that class was never seen. Raises ``FoldCoverageError`` naming
    the fold, the class and where its clips come from, before any training; with ``allow_missing``
    returns ``{fold: [classes without training clips]}`` instead, for the caller to report those
    classes as untestable in those folds."""
    labels = list(dataset["label"])
    missing: dict[str, list[str]] = {}
    problems = []
    for fold in protocol.folds:
        if fold.column not in dataset.column_names:
            raise FoldCoverageError(f"protocol {protocol.name}: fold {fold.name} splits on column {fold.column!r}, "
                                    f"which the dataset lacks (columns: {dataset.column_names})")
        values = list(dataset[fold.column])
        train_idx, test_idx = fold.split(values)
        if not test_idx:
            problems.append(f"fold {fold.name} has no test clips ({fold.column} {fold.test_values} match no row)")
            continue
        present = {labels[i] for i in train_idx}
        lacking = [c for c in protocol.classes if c not in present]
        if lacking:
            missing[fold.name] = lacking
            for c in lacking:
                sources = sorted({values[i] for i, l in enumerate(labels) if l == c})
                problems.append(f"fold {fold.name}: class {c!r} has no training clips (all its clips come from "
                                f"{fold.column} {', '.join(sources) if sources else 'nowhere'}, held out for testing)")
    if problems and (not allow_missing or any("no test clips" in p for p in problems)):
        raise FoldCoverageError(
            f"protocol {protocol.name}: " + "; ".join(problems)
            + ". Results for such folds would be misleading: add clips of those classes from other "
              "speakers/sessions, drop the class with --classes, or use fewer folds")
    return missing
