"""Normalising drug names so that one drug under two spellings is one drug."""

from __future__ import annotations

import re
import unicodedata

__all__ = ["normalize_drug_name"]

SALT_AND_FORM_WORDS = frozenset(
    [
        "hydrochloride",
        "dihydrochloride",
        "trihydrochloride",
        "hcl",
        "2hcl",
        "hydrobromide",
        "hbr",
        "mesylate",
        "dimesylate",
        "methanesulfonate",
        "maleate",
        "dimaleate",
        "fumarate",
        "hemifumarate",
        "succinate",
        "tartrate",
        "bitartrate",
        "citrate",
        "sulfate",
        "sulphate",
        "bisulfate",
        "phosphate",
        "diphosphate",
        "acetate",
        "lactate",
        "malate",
        "oxalate",
        "besylate",
        "tosylate",
        "tosilate",
        "nitrate",
        "bromide",
        "chloride",
        "iodide",
        "sodium",
        "disodium",
        "potassium",
        "calcium",
        "magnesium",
        "lithium",
        "hydrate",
        "monohydrate",
        "dihydrate",
        "trihydrate",
        "sesquihydrate",
        "hemihydrate",
        "anhydrous",
        "salt",
        "freebase",
        "base",
        "free",
    ]
)
_STEREO_SIGN = re.compile(r"\(\s*[+\-±]\s*\)")
_TRAILING_ALIAS = re.compile(r"\s*\([^()]*\)\s*$")
_TOKEN = re.compile(r"[a-z0-9]+")


def normalize_drug_name(name: object) -> str:
    """Return the key under which a drug name is matched across tables.

    Lower-cases, applies Unicode compatibility normalisation, drops optical-rotation signs
    (``(+)``, ``(-)``), a trailing parenthesised alias (``"Navitoclax (ABT-263)"``), salt and
    hydrate words (``hydrochloride``, ``mesylate``, ``sodium``, ...) and all punctuation and spaces.

    Parameters
    ----------
    name
        A drug name as written in some table.

    Returns
    -------
    The normalised key (may be empty for a name made only of salt words or punctuation).

    Examples
    --------
    >>> normalize_drug_name("Panobinostat")
    'panobinostat'
    >>> normalize_drug_name("AZD-6482") == normalize_drug_name("azd 6482")
    True
    >>> normalize_drug_name("Imatinib Mesylate"), normalize_drug_name("(+)-JQ1")
    ('imatinib', 'jq1')
    >>> normalize_drug_name("Navitoclax (ABT-263)")
    'navitoclax'
    """
    text = unicodedata.normalize("NFKC", str(name)).lower().strip()
    text = _STEREO_SIGN.sub(" ", text)
    stripped = _TRAILING_ALIAS.sub("", text)
    if _TOKEN.search(stripped):
        text = stripped
    tokens = _TOKEN.findall(text.replace("-", "").replace("_", ""))
    tokens_spaced = _TOKEN.findall(text)
    kept = [t for t in tokens_spaced if t not in SALT_AND_FORM_WORDS]
    if not kept:  # a name that is only salt words ("sodium chloride") stays itself
        return "".join(tokens)
    return "".join(kept)
