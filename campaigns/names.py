"""Campaign names: what a name may hold, its one spelling, and how to show any stored name. Pure.

A name is typed in a terminal, printed in tables and hints, and matched exactly. So:
- It is normalised with NFKC: canonically equal spellings (a precomposed "é" and "e" + U+0301)
  and compatibility look-alikes (fullwidth "ｐｒｏｍｏ", "ﬁ", a no-break space) become one name;
  "ｐｒｏｍｏ" cannot sit beside "promo" looking the same. (Refusing look-alikes instead would
  refuse every fullwidth CJK spelling people type on purpose; folding keeps the name readable.)
- Characters that are invisible or change what a terminal shows are refused: control characters
  (C0, DEL, C1: ANSI escape sequences start with ESC), format characters (bidi marks and
  overrides, zero-width spaces and joiners, the BOM), line and paragraph separators, private-use
  and unassigned code points, and every space but the plain one.
- Invalid UTF-8 from the command line (which Python keeps as lone surrogates) is refused with
  its own message.
Names stored before these rules are shown with such characters escaped (`display`), never raw.
"""

from __future__ import annotations

import unicodedata

from campaigns.errors import InvalidSettings

__all__ = ["NAME_MAX", "display", "json_safe", "lookup_spellings", "normalize"]

NAME_MAX = 200
#: Unicode general categories a name may not contain: Cc control, Cf format, Cs surrogate,
#: Co private use, Cn unassigned, Zl/Zp line/paragraph separators (Zs: only U+0020 allowed).
_REFUSED = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def _unsafe(ch: str) -> bool:
    category = unicodedata.category(ch)
    return category in _REFUSED or (category == "Zs" and ch != " ")


def _has_surrogates(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def normalize(raw: str) -> str:
    """The name to store for `raw` (NFKC, trimmed); InvalidSettings with the reason otherwise."""
    if _has_surrogates(raw):
        raise InvalidSettings("name: not valid UTF-8 (check the terminal's or the shell's "
                              "encoding; names are UTF-8 text)")
    name = unicodedata.normalize("NFKC", raw).strip(" ")
    bad = sorted({ch for ch in name if _unsafe(ch)})
    if bad:
        shown = ", ".join(f"U+{ord(ch):04X} {unicodedata.name(ch, '')}".rstrip()
                          for ch in bad[:3])
        raise InvalidSettings(f"name: control, format and invisible characters are not allowed "
                              f"(found {shown})")
    if not name or len(name) > NAME_MAX:
        raise InvalidSettings(f"name: must be 1-{NAME_MAX} characters")
    return name


def lookup_spellings(raw: str) -> list[str]:
    """The names a command-line `raw` may refer to: as typed (a name stored before the rules)
    and normalised. InvalidSettings for invalid UTF-8 (it cannot name anything)."""
    if _has_surrogates(raw):
        raise InvalidSettings("name: not valid UTF-8 (check the terminal's or the shell's "
                              "encoding; names are UTF-8 text)")
    spellings = [raw]
    folded = unicodedata.normalize("NFKC", raw).strip(" ")
    if folded != raw:
        spellings.append(folded)
    return spellings


def display(name: str) -> str:
    """`name` safe to print: as it is when `normalize` would allow every character of it;
    otherwise every such character written as an escape (\\x1b, \\u202e) and backslashes
    doubled, so that the escapes are unambiguous."""
    if not any(_unsafe(ch) for ch in name):
        return name
    out = []
    for ch in name:
        if ch == "\\":
            out.append("\\\\")
        elif _unsafe(ch):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else
                       f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "".join(out)


def json_safe(text: str) -> str:
    """JSON text (from json.dumps) with every character `display` escapes written as a JSON
    escape instead: the same data, nothing a terminal would act on (U+009B is a CSI to some)."""
    # A raw newline in json.dumps' output is layout (in strings, C0 controls are escaped).
    if not any(_unsafe(ch) and ch != "\n" for ch in text):
        return text
    out = []
    for ch in text:
        if ch == "\n" or not _unsafe(ch):
            out.append(ch)
            continue
        code = ord(ch)
        if code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
    return "".join(out)

