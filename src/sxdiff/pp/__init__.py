"""Preprocessing: out-of-distribution splits (and, later, drug features and protein proxies)."""

from ._ood_split import ood_split

__all__ = ["ood_split"]
