"""Which token combinations are identifying evidence, and the OPRF inputs of a person's tokens.

A person (an entity of a row: ``student``, ``parent``, ``child``, ...) has the ``mk1`` tokens of the hashed file,
here under the public encoding key: ``id_tok`` (16 bytes), ``id_near`` (4 near tokens, window w removed),
``name_fz`` (name variants salted by the birth date: element 0 the exact name, 1 the full pinyin, 2+ pinyin minus
one syllable) and ``dob_tok``.

Content inputs (one OPRF evaluation per distinct token; the row stores ``z = content_value(y)``): the ID, each near
token with its window, each name element, the birth date. The tax bureau requests the content inputs of its own
claims' tokens and so learns which tokens of an opened person equal its own — exactly the equalities verify
compares — and nothing about the others.

Evidence inputs (the row opens when one of them equals a requested one) follow the fuzzy linker's acceptance policy
(:mod:`matchkit.link.fuzzy`, cases A–D), so that a row opens when verify could link one of its persons to a listed
claim:

* ``ID``: the exact ID token (the same OPRF input as the ID's content value; the tag and ``z`` use other labels).
* ``STRONG(v, w)`` for every name element ``v`` but the exact name and window ``w`` in {0, 1}, and ``PAIR23(v)``
  (windows 2 and 3 together): cases A and B (two or more shared windows always include window 0 or 1, or are
  exactly 2 and 3) with a name agreeing to one edit, and case C through a strong window.
* ``WEAK(v, w)`` for ``v`` the pinyin element (position 1) and ``w`` in {2, 3}: case C through a weak window —
  with a name agreeing exactly or phonetically (and so, by the salt, the birth date).

The exact name (element 0) carries no ``STRONG``/``PAIR23``/``WEAK`` evidence of its own (issue 13: five fewer
OPRF evaluations per person and per listed subject). Element 0 is ``"N:" + normalised name`` and element 1
``"P:" + its pinyin``, both salted by the birth date, and the pinyin is a function of the normalised name: two
persons whose element 0 is equal have an equal element 1, so each such input of element 0 that two persons share
is matched by the same input of element 1 — the set of rows a request opens is unchanged. (Element 1 also meets
the other side's deletion variants, positions 2+, so its ``PAIR23`` stays even though ``WEAK(v1, 2)`` covers it
against another element 1.) A name with a single element (none is encoded so today) keeps element 0.
* ``BODY(dob, near0..3)``: case A when a side has no name (the same ID body and birth date).
* ``NOID(v0)``: case D, the exact name salted by the birth date, requested only for a claim whose subject has no
  ID near tokens at all (an invalid or Excel-damaged ID); every person with a name and a birth date carries it.

Never evidence: a near token alone, a near token with the birth date, a name without an ID window (except D).
Every evidence input holds a name element salted by the birth date together with an ID window, or the ID, or (D)
the exact name and birth date. A stranger born in the same county and month as a listed child shares its weak near
tokens and maybe its birth date, and stays sealed. The only rows this opens that the linker would not link are
those of a person sharing a strong window (window 0 or 1: the rest of the ID body, birth date and sequence number
included) and a one-edit name salted by the same birth date with a listed claim — in practice the same person.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pyarrow as pa

# one-byte domain tags of the OPRF inputs (content and evidence never share an input)
C_ID, C_NEAR, C_NAME, C_DOB = b"\x01", b"\x02", b"\x03", b"\x04"
E_STRONG, E_PAIR23, E_WEAK, E_BODY, E_NOID = b"\x11", b"\x12", b"\x13", b"\x14", b"\x15"
_PREFIX = b"K1"
_Q = struct.Struct(">q")


@dataclass(frozen=True)
class Person:
    """One person's public ``mk1`` tokens (None where absent)."""

    id_tok: bytes | None
    near: tuple[int, ...] | None
    names: tuple[int, ...] | None
    dob: bytes | None

    # --- content --------------------------------------------------------------------------------------------------
    def id_input(self) -> bytes | None:
        return None if self.id_tok is None else _PREFIX + C_ID + self.id_tok

    def near_inputs(self) -> list[bytes] | None:
        if self.near is None:
            return None
        return [_PREFIX + C_NEAR + bytes([w]) + _Q.pack(v) for w, v in enumerate(self.near)]

    def name_inputs(self) -> list[bytes] | None:
        return None if self.names is None else [_PREFIX + C_NAME + _Q.pack(v) for v in self.names]

    def dob_input(self) -> bytes | None:
        return None if self.dob is None else _PREFIX + C_DOB + self.dob

    def content_inputs(self) -> list[bytes]:
        out = [x for x in (self.id_input(), self.dob_input()) if x is not None]
        out.extend(self.near_inputs() or ())
        out.extend(self.name_inputs() or ())
        return out

    # --- evidence -------------------------------------------------------------------------------------------------
    def evidence_inputs(self, *, query: bool = False) -> list[bytes]:
        """The person's evidence (``query=False``: a person of an extract) or the evidence a claim's subject
        requests (``query=True``: NOID only when it has no near tokens). Deduplicated, in a fixed order."""
        out: list[bytes] = []
        id_input = self.id_input()
        if id_input is not None:
            out.append(id_input)
        near, names, dob = self.near, self.names, self.dob
        if near is not None and len(near) == 4:
            if names:
                # element 0 (the exact name) is left out when element 1 (its full pinyin) is there: both are
                # functions of the normalised name salted by the same birth date, so two persons whose element 0
                # meets also meet on element 1, through the very same windows (see the module docstring)
                usable = names[1:] if len(names) >= 2 else names
                for v in dict.fromkeys(usable):
                    packed = _Q.pack(v)
                    out.append(_PREFIX + E_STRONG + packed + b"\x00" + _Q.pack(near[0]))
                    out.append(_PREFIX + E_STRONG + packed + b"\x01" + _Q.pack(near[1]))
                    out.append(_PREFIX + E_PAIR23 + packed + _Q.pack(near[2]) + _Q.pack(near[3]))
                for v in dict.fromkeys(usable[:1]):
                    packed = _Q.pack(v)
                    out.append(_PREFIX + E_WEAK + packed + b"\x02" + _Q.pack(near[2]))
                    out.append(_PREFIX + E_WEAK + packed + b"\x03" + _Q.pack(near[3]))
            if dob is not None:
                out.append(_PREFIX + E_BODY + dob + b"".join(_Q.pack(v) for v in near))
        if names and dob is not None and (not query or near is None):
            out.append(_PREFIX + E_NOID + _Q.pack(names[0]))
        return list(dict.fromkeys(out))


TOKEN_SUFFIXES = ("id_tok", "id_near", "name_fz", "dob_tok")


def token_columns(entity: str) -> tuple[str, ...]:
    return tuple(f"{entity}_{suffix}" for suffix in TOKEN_SUFFIXES)


def persons_of(table: pa.Table, entity: str) -> list[Person]:
    """The persons of one entity in every row of a hashed table (public encoding)."""
    names = table.column_names
    columns = {}
    for suffix in TOKEN_SUFFIXES:
        name = f"{entity}_{suffix}"
        columns[suffix] = table.column(name).to_pylist() if name in names else [None] * table.num_rows
    return [
        Person(i, tuple(n) if n is not None else None, tuple(f) if f else None, d)
        for i, n, f, d in zip(columns["id_tok"], columns["id_near"], columns["name_fz"], columns["dob_tok"])
    ]
