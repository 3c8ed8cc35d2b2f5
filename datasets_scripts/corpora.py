"""One entry point for every corpus: ``load_corpus(name, data_dir, protocol=None)``.

``name`` is ``iemocap``, ``msp_improv``, ``msp_podcast``, ``emodb``, ``ravdess`` (each read from its
official release layout) or ``audiofolder`` (any folder of audio + ``metadata.csv``). Every builder
returns a :class:`CorpusData`: a ``datasets.Dataset`` in the unified schema, the corpus's standard
protocol (folds or official partitions) and the counts of what was skipped and why.
"""

from __future__ import annotations

from pathlib import Path

from .audiofolder import CorpusData, CorpusLayoutError, load_audiofolder
from .protocol import check_folds_cover_classes

CORPORA = ("iemocap", "msp_improv", "msp_podcast", "emodb", "ravdess", "audiofolder")


def load_corpus(
    name: str,
    data_dir: str | Path,
    protocol: str | None = None,
    skip_bad: bool = False,
    classes: list[str] | None = None,
    folds: int = 5,
    label_column: str = "label",
    speaker_column: str = "speaker",
    text_column: str = "text",
    normalize_labels: bool = False,
    allow_missing_classes: bool = False,
) -> CorpusData:
    """Load ``name`` from ``data_dir``; ``protocol`` picks a named variant (default: the literature's).

    ``normalize_labels`` (audiofolder): merge labels that differ only in case or spacing instead of
    refusing them. Every fold's training part must hold every class (``check_folds_cover_classes``);
    with ``allow_missing_classes`` the classes a fold lacks are returned in
    ``CorpusData.untestable`` (``{fold: [classes]}``) instead of stopping."""
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; choose one of {', '.join(CORPORA)}")
    if not Path(data_dir).expanduser().exists():
        raise CorpusLayoutError(f"{data_dir}: not found (corpus {name!r})")
    if name == "audiofolder":
        if protocol is not None:
            raise ValueError("an audiofolder has no named protocols; use --folds or --test_speakers")
        corpus = load_audiofolder(data_dir, classes, folds, label_column, speaker_column, text_column,
                                  skip_bad=skip_bad, normalize_labels=normalize_labels)
        corpus.untestable = check_folds_cover_classes(corpus.dataset, corpus.protocol, allow_missing_classes)
        return corpus
    if normalize_labels:
        raise ValueError(f"normalize_labels applies to audiofolder metadata; {name!r} maps its own label codes")
    if name == "iemocap":
        from .iemocap import load_iemocap as builder
    elif name == "msp_improv":
        from .msp_improv import load_msp_improv as builder
    elif name == "msp_podcast":
        from .msp_podcast import load_msp_podcast as builder
    elif name == "emodb":
        from .emodb import load_emodb as builder
    else:
        from .ravdess import load_ravdess as builder
    corpus = builder(data_dir, protocol=protocol, skip_bad=skip_bad, classes=classes)
    corpus.untestable = check_folds_cover_classes(corpus.dataset, corpus.protocol, allow_missing_classes)
    return corpus
