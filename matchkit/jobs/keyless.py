"""The five jobs of the keyless mode (SPEC §7) over files and key paths: what the ``seal``, ``request``, ``answer``
and ``open`` commands (and ``key new-oprf``) run. Each loads its keys from files (never from an argument value),
calls the library in :mod:`matchkit.keyless`, and returns its typed result."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matchkit.keyless.answer import AnswerResult, answer_file
from matchkit.keyless.common import KeylessError, OprfKey, load_oprf_key, new_oprf_key, write_oprf_key
from matchkit.keyless.opener import OpenResult, open_request
from matchkit.keyless.request import RequestResult, request_file
from matchkit.keyless.sealed import SealResult, merge_tables, seal_file
from matchkit.signing import load_signing_key

__all__ = ["answer_job", "merge_job", "new_oprf_key_job", "open_job", "request_job", "seal_job"]


def new_oprf_key_job(output: str | Path, *, purposes: Sequence[str], years: tuple[int, int]) -> OprfKey:
    if years[0] > years[1]:
        raise KeylessError(f"--years {years[0]}-{years[1]}: the first year is after the last")
    key = new_oprf_key(tuple(purposes), years)
    write_oprf_key(key, output)
    return key


def seal_job(source: str, input_path: str | Path, oprf_key: str | Path, output: str | Path, *, tax_year: int,
             rejects: str | Path | None = None, previous: str | Path | None = None, sign: str | Path | None = None,
             encoding: str = "auto", purpose: str | None = None, audit_log: str | Path | None = None
             ) -> SealResult:
    key = load_oprf_key(oprf_key)
    signing_key = load_signing_key(sign) if sign else None
    return seal_file(source, input_path, key, output, tax_year=tax_year, purpose=purpose, rejects_path=rejects,
                     encoding=encoding, previous=previous, signing_key=signing_key, audit_log=audit_log)


def merge_job(base: str | Path, deltas: Sequence[str | Path], output: str | Path, *, sign: str | Path | None = None,
              audit_log: str | Path | None = None) -> dict[str, Any]:
    signing_key = load_signing_key(sign) if sign else None
    return merge_tables(base, deltas, output, signing_key=signing_key, audit_log=audit_log)


def request_job(claims_input: str | Path, output: str | Path, state: str | Path, *, rejects: str | Path | None = None,
                encoding: str = "auto", tax_year: int | None = None) -> RequestResult:
    return request_file(claims_input, output, state, rejects_path=rejects, encoding=encoding, tax_year=tax_year)


def answer_job(request: str | Path, oprf_key: str | Path, output: str | Path, *, max_elements: int | None = None,
               audit_log: str | Path | None = None, sign: str | Path | None = None) -> AnswerResult:
    key = load_oprf_key(oprf_key)
    signing_key = load_signing_key(sign) if sign else None
    return answer_file(request, key, output, max_elements=max_elements, audit_log=audit_log, signing_key=signing_key)


def open_job(state: str | Path, answers: dict[str, str | Path], tables: dict[str, str | Path], output_dir: str | Path,
             *, trust: str | Path | None = None, audit_log: str | Path | None = None) -> OpenResult:
    return open_request(state, answers, tables, output_dir, trust=trust, audit_log=audit_log)
