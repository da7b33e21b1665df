"""Saved ProteinTranslator files: the version of the translator's state, and the refusal of older ones."""

from __future__ import annotations

import json
from pathlib import Path

from ._safe_io import FORMAT_VERSION, ModelFileError

__all__ = ["TRANSLATOR_FILE_VERSION", "refuse_old_translator"]

TRANSLATOR_FILE_VERSION = 2
"""Version of the translator's saved state (1: MLP on standardised genes; 2: PCA, ridge and MLP, chosen per protein)."""


def refuse_old_translator(path: Path) -> None:
    """Raise ``ModelFileError`` for a translator file whose state predates :data:`TRANSLATOR_FILE_VERSION`."""
    try:
        manifest = json.loads((path / "manifest.json").read_text())
        attributes = json.loads((path / "attributes.json").read_text())
    except (OSError, ValueError):
        return  # the general checks of SafeSaveLoadMixin.load explain what is wrong
    if manifest.get("format_version") != FORMAT_VERSION or manifest.get("model_class") != "ProteinTranslator":
        return
    version = attributes.get("translator_version_", 1) if isinstance(attributes, dict) else 1
    if not isinstance(version, int) or version < TRANSLATOR_FILE_VERSION:
        import sxdiff

        raise ModelFileError(
            f"{path} holds a ProteinTranslator of an older sxdiff (translator state {version}: an MLP on standardised "
            f"genes), whose network differs from this sxdiff {sxdiff.__version__} (translator state "
            f"{TRANSLATOR_FILE_VERSION}: principal components, linear map and MLP chosen per protein); retrain the "
            "translator with this version."
        )
