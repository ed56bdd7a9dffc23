"""The columns each encoding writes into a hashed file, named once.

Written by the encoders of this package (``person_table``: the ``mk1`` person encodings of the tax sources;
``fields_table``: the linkage-schema field encodings), read by ``link``, ``verify`` and the jobs. The whole file
format, these names included, is described in :mod:`matchkit.io.hashed.format`.
"""

from __future__ import annotations

LINE_COLUMN = "_line"  # input line number of the record (rejects and diagnostics)

# mk1 person encodings: one column per (entity, part), named "<entity>_<part>"
ID_TOKEN = "id_tok"
ID_VALID = "id_valid"
ID_NEAR = "id_near"
NAME_FUZZY = "name_fz"
DOB_TOKEN = "dob_tok"
BIRTH_YM = "birth_ym"
ID_BIRTH_YM = "id_birth_ym"


def person_column(entity: str, part: str) -> str:
    """The column of one mk1 person encoding, e.g. ``person_column("child", ID_TOKEN) == "child_id_tok"``."""
    return f"{entity}_{part}"


# linkage-schema field encodings
def token_column(field_name: str) -> str:
    """Exact keyed token of a linkage field (``exact`` encoding)."""
    return f"{field_name}_tok"


def bloom_column(field_name: str) -> str:
    """Bloom filter of a linkage field (``bloom`` encoding)."""
    return f"{field_name}_bf"


def blocking_column(pass_name: str) -> str:
    """Keyed 64-bit blocking key of a ``[[blocking]]`` pass."""
    return f"_blk_{pass_name}"
