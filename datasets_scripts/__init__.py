"""Corpus builders, evaluation protocols and the feature cache."""

from .corpora import CorpusData, CorpusLayoutError, load_corpus
from .protocol import Fold, Protocol

__all__ = ["CorpusData", "CorpusLayoutError", "Fold", "Protocol", "load_corpus"]
