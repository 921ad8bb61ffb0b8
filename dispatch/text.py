"""Text as dispatchers and supervisors search it: Vietnamese with or without diacritics."""

from __future__ import annotations

import unicodedata


def fold(text: str) -> str:
    """Lower-case without Vietnamese diacritics ("Cháy ở Hàng Bài" -> "chay o hang bai")."""
    text = text.lower().replace("đ", "d")
    decomposed = unicodedata.normalize("NFD", text)
    return unicodedata.normalize(
        "NFC", "".join(ch for ch in decomposed if unicodedata.category(ch) != "Mn")
    )


def like_pattern(query: str, escape: str = "\\") -> str:
    """A LIKE pattern matching `query` (folded) anywhere, its wildcards taken literally."""
    folded = fold(query)
    for special in (escape, "%", "_"):
        folded = folded.replace(special, escape + special)
    return f"%{folded}%"
