"""Chinese licence plates (pure): validation and normalisation.

Ordinary plates: province abbreviation + issuing-authority letter + 5 characters (letters
other than I and O, and digits), e.g. 云A12345. New-energy plates have 6 characters after the
letter (云AD12345). Input may carry a separator (云A·12345, 云A-12345), lower case letters and
full-width letters and digits (云ａ１２３４５, as Chinese input methods type them).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

PROVINCES: Final = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"
_BODY: Final = "[A-HJ-NP-Z0-9]"
PLATE_PATTERN: Final = (
    rf"^[{PROVINCES}][A-HJ-NP-Z]({_BODY}{{5}}|[DF]{_BODY}{{5}}|{_BODY}{{5}}[DF])$"
)
_PLATE: Final = re.compile(PLATE_PATTERN)
_SEPARATORS: Final = str.maketrans("", "", " ·•.-_")


class InvalidPlate(ValueError):
    pass


def normalise_plate(text: str) -> str:
    """``云a·12345`` / ``云ａ１２３４５`` -> ``云A12345``; raises ``InvalidPlate``."""
    if not isinstance(text, str):
        raise InvalidPlate("a plate has 7 or 8 characters")
    # NFKC folds full-width letters, digits, hyphens and spaces to ASCII; province characters
    # are unchanged by it.
    folded = unicodedata.normalize("NFKC", text).strip()
    if not 7 <= len(folded) <= 12:
        raise InvalidPlate("a plate has 7 or 8 characters")
    plate = folded.translate(_SEPARATORS).upper()
    if not _PLATE.match(plate):
        raise InvalidPlate(
            f"{text!r} is not a Chinese plate (province, letter, then 5 characters, "
            "or 6 for new-energy vehicles)"
        )
    return plate


def display(plate: str) -> str:
    """云A·12345, as the plate reads and as the voice prompt says it."""
    return f"{plate[:2]}·{plate[2:]}"
