"""The agency's answer: ``BlindEvaluate`` of every element of a request under its key for (purpose, tax year).

The agency sees only blinded elements: their number, the purpose, the tax year and who asked. It refuses, before
evaluating anything, a request over ``max_elements``, an element that is not a canonical ristretto255 encoding (or
the identity), a damaged request, or a purpose or year its key does not serve. Every run, refused or not, appends a
line to the audit log (request id, element count, purpose, year, key, time).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from matchkit import __version__
from matchkit.io.hashed.writer import HashedFileWriter
from matchkit.keyless.common import TASK_ITEMS, KeylessError, KeyRef, OprfKey, answer_task, manifest_of, now
from matchkit.keyless.request import ELEMENT_SCHEMA, REQUEST_FORMAT, REQUEST_META_KEY
from matchkit.runtime.cluster import Runner
from matchkit.security import oprf
from matchkit.security.audit import audited
from matchkit.security.signing import SigningKey

ANSWER_META_KEY = b"matchkit.answer"
ANSWER_FORMAT = "matchkit-answer"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class AnswerResult:
    output: Path
    request_id: str
    elements: int
    manifest: dict[str, Any]


def read_elements(path: Path, meta_key: bytes, expected_format: str, label: str) -> tuple[dict[str, Any], list[bytes]]:
    manifest = manifest_of(path, meta_key, expected_format, label)
    try:
        table = pq.read_table(path)
        elements = table.column("element").to_pylist()
    except Exception as exc:  # a damaged file can fail in any decoder
        raise KeylessError(f"{label} cannot be read (corrupt?)", path=path) from exc
    if len(elements) != manifest.get("element_count"):
        raise KeylessError(f"{label} holds {len(elements)} elements but its manifest says "
                           f"{manifest.get('element_count')}", path=path)
    return manifest, elements


def answer_file(request: str | Path, key: OprfKey, output: str | Path, *, max_elements: int | None = None,
                audit_log: str | Path | None = None, signing_key: SigningKey | None = None,
                workers: int | None = None, runner: Runner | None = None, key_path: str | Path | None = None
                ) -> AnswerResult:
    """Answer a request; with ``runner`` (``--scheduler``) the evaluations run as scheduler tasks that read the
    key from ``key_path``."""
    with audited(audit_log, "answer") as record:
        record.add_input(request)
        record.details.update(key_id=key.key_id, max_elements=max_elements)
        path = Path(request)
        manifest = manifest_of(path, REQUEST_META_KEY, REQUEST_FORMAT, "request (from 'matchkit request')",
                               check_digest=False)  # read_elements below checks it, after the cheap refusals
        record.details.update(request_id=manifest.get("request_id"), element_count=manifest.get("element_count"),
                              purpose=manifest.get("purpose"), tax_year=manifest.get("tax_year"))
        count = manifest.get("element_count")
        if max_elements is not None and isinstance(count, int) and count > max_elements:
            raise KeylessError(f"request holds {count} elements, over the limit of {max_elements} (--max-elements);"
                               " refused, nothing evaluated", path=path)
        purpose, year = manifest.get("purpose"), manifest.get("tax_year")
        if not isinstance(purpose, str) or not isinstance(year, int):
            raise KeylessError("request manifest has no purpose or tax year", path=path)
        refusal = key.serves(purpose, year)
        if refusal:
            raise KeylessError(f"refused: {refusal}", path=path)
        _, elements = read_elements(path, REQUEST_META_KEY, REQUEST_FORMAT, "request")
        if max_elements is not None and len(elements) > max_elements:
            raise KeylessError(f"request holds {len(elements)} elements, over the limit of {max_elements}", path=path)
        ekey = key.evaluation_key(purpose, year)
        results: list[bytes | None]
        if runner is None or key_path is None:
            results = oprf.blind_evaluate_many(ekey.secret, elements, workers)  # None: not a valid element
        else:  # on the scheduler (--scheduler): each task reads the key from its file
            ref = KeyRef(str(Path(key_path).resolve()), purpose, year)
            results = []
            for start, (joined, bad) in zip(range(0, len(elements), TASK_ITEMS), runner.map(answer_task, [
                    (ref, b"".join(elements[start:start + TASK_ITEMS]))
                    for start in range(0, len(elements), TASK_ITEMS)])):
                part: list[bytes | None] = [joined[32 * k:32 * k + 32] for k in range(len(joined) // 32)]
                for k in bad:
                    part[k] = None
                results.extend(part)
        evaluated = [e for e in results if e is not None]
        if len(evaluated) != len(results):
            first = results.index(None)
            raise KeylessError(f"element {first + 1} of {len(elements)} is not a valid ristretto255 encoding "
                               f"({len(results) - len(evaluated)} malformed in all); refused, no answer written",
                               path=path)
        answer_manifest = {
            "format": ANSWER_FORMAT, "format_version": FORMAT_VERSION, "request_id": manifest["request_id"],
            "request_sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "purpose": purpose, "tax_year": year,
            "element_count": len(evaluated), "key_id": ekey.key_id, "key_fingerprint": ekey.fingerprint,
            "tool_version": __version__, "created": now(),
        }
        writer = HashedFileWriter(output, ELEMENT_SCHEMA, unique=["element"])
        try:
            writer.write(pa.table({"element": pa.array(evaluated, pa.binary(oprf.ELEMENT_BYTES))},
                                  schema=ELEMENT_SCHEMA))
            answer_manifest = writer.close_artefact(answer_manifest, signing_key=signing_key, meta_key=ANSWER_META_KEY)
        except BaseException:
            writer.abort()
            raise
        record.add_output(output, elements=len(evaluated))
        record.details.update(key_fingerprint=ekey.fingerprint)
        if signing_key is not None:
            record.details.update(signer=signing_key.signer, signer_key_id=signing_key.key_id)
    return AnswerResult(Path(output), str(manifest["request_id"]), len(evaluated), answer_manifest)
