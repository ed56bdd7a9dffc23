"""The verify job: hashed claims + hashed extracts in, one flags row per claim line (and a report) out.

The files are opened and checked here (:mod:`matchkit.io.hashed.reader`), the rules run in :mod:`matchkit.verify`,
and the outputs are written atomically (:mod:`matchkit.io.atomic`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matchkit import settings
from matchkit.errors import MatchkitError
from matchkit.io.atomic import check_output_path, remove_published, write_atomically
from matchkit.security.audit import audited
from matchkit.security.signing import TrustStore, load_trust_dir

EXTRACT_SOURCES = ("education", "household", "civil_affairs", "only_child", "medical_insurance")


@dataclass(frozen=True)
class VerifyResult:
    flags: Any  # pandas.DataFrame, one row per claim line
    output: Path | None
    report: Path | None
    inputs: list[dict[str, Any]]
    key_id: str | None = None


def open_inputs(claims_path: str | Path, extract_paths: list[str | Path]) -> tuple[Any, list[Any]]:
    """Open and check every hashed file (:func:`matchkit.io.hashed.reader.open_hashed`); refuse a claims file
    given as an extract, an extract verify does not use, and mixed keys, purposes or encoding versions."""
    from matchkit.errors import ManifestError
    from matchkit.io.hashed.reader import check_compatible, open_hashed

    claims_file = open_hashed(claims_path)
    if claims_file.source != "claims":
        raise ManifestError(f"is a hashed '{claims_file.source}' extract, not a claims file", path=claims_path)
    extract_files = [open_hashed(path) for path in extract_paths]
    for extract in extract_files:
        if extract.source == "claims":
            raise ManifestError("is a hashed claims file; give it with --claims, not as an extract",
                                path=extract.path)
        if extract.source not in EXTRACT_SOURCES:
            raise ManifestError(
                f"is a hashed '{extract.source}' file, which verify does not use "
                f"(expects {', '.join(EXTRACT_SOURCES)})", path=extract.path)
    check_compatible([claims_file, *extract_files])
    return claims_file, extract_files


def load_hashed_inputs(claims_path: str | Path, extract_paths: list[str | Path], *,
                       lazy_encodings: bool = True, opened: tuple[Any, list[Any]] | None = None
                       ) -> tuple[Any, dict[str, Any], list[Any]]:
    """Open and check every hashed file, refuse mixed keys/purposes/encodings, and load what verify reads.

    Returns ``(claims, sources, files)``: the claims as a DataFrame, each extract source as a
    ``matchkit.verify.HashedExtract`` (a DataFrame of the columns the rules read, plus the people's fuzzy
    encodings, read from the files in batches only when the fuzzy linker asks and only for its candidates), or as
    one DataFrame of every column verify may read with ``lazy_encodings=False``. Only the columns verify reads are
    loaded. Token and encoding columns (16-byte tokens, near-token and name lists) stay Arrow-backed
    (``pd.ArrowDtype``, zero-copy from the Parquet read): one Python object per cell would cost more time and
    memory at a million claim lines than the whole verification. ``opened``: the files as
    :func:`open_inputs` gave them (not opened and checked again).
    """
    import pandas as pd
    import pyarrow as pa

    from matchkit.io.hashed.reader import ColumnBatches, read_frame
    from matchkit.verify import HashedExtract
    from matchkit.verify.engine import input_columns
    from matchkit.verify.evidence import ENTITIES
    from matchkit.verify.linking import ENCODING_COLUMNS

    claims_file, extract_files = opened or open_inputs(claims_path, extract_paths)

    def load(hashed: Any, lazy: bool) -> tuple[pd.DataFrame, Any]:
        wanted = set(input_columns(hashed.source))
        if lazy:
            wanted -= {f"{entity}_{c}" for entity in ENTITIES[hashed.source] for c in ENCODING_COLUMNS}
        return read_frame(hashed, wanted, keep_open=lazy)

    claims, _ = load(claims_file, lazy=False)
    grouped: dict[str, list[tuple[Any, Any]]] = {}
    for extract in extract_files:
        grouped.setdefault(extract.source, []).append(load(extract, lazy_encodings))
    sources: dict[str, Any] = {}
    for name, loaded in grouped.items():
        frames = [frame for frame, _ in loaded]
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        sources[name] = (HashedExtract(frame, ColumnBatches([handle for _, handle in loaded]))
                         if lazy_encodings else frame)
    pa.default_memory_pool().release_unused()  # decoding buffers: give them back before verify allocates
    return claims, sources, [claims_file, *extract_files]


def verify_files(claims_path: str | Path, extract_paths: list[str | Path], output: str | Path | None = None, *,
                 report_path: str | Path | None = None, progress: Callable[[str], None] | None = None,
                 trust: str | Path | TrustStore | None = None, audit_log: str | Path | None = None,
                 lang: str = "zh", partitions: int | None = None, scheduler: Any = None,
                 workers: int | None = None) -> VerifyResult:
    """Verify hashed claims against hashed extracts; write flags (CSV, Parquet or an Excel workbook by extension)
    and the report.

    With ``trust`` (a folder of trusted ``*.pub`` keys) every input must be signed by one of them and unchanged
    since; with ``audit_log`` the run appends one line to that log, whether it succeeds or not. Left out (None),
    both come from their environment variables, ``MATCHKIT_TRUST_DIR`` and ``MATCHKIT_AUDIT_LOG``
    (:mod:`matchkit.settings`), as for the ``verify`` command. ``lang`` (``zh`` or ``en``) is the language of the
    workbook and the report.

    ``partitions`` (N) runs verify partition by partition (memory bounded by a partition; the flags are the same
    byte for byte whatever N: ``matchkit.jobs.verify_partitioned``), ``scheduler`` runs the partitions on Dask
    (``local``, ``processes`` or ``tcp://HOST:PORT``; :mod:`matchkit.runtime.cluster`). Left out, a claims file
    of more than ``LINES_PER_PARTITION`` lines is split into one partition per that many lines.
    """
    trust = trust if trust is not None else settings.trust_dir()
    audit_log = audit_log if audit_log is not None else settings.audit_log()
    with audited(audit_log, "verify") as record:
        for path in [claims_path, *extract_paths]:
            record.add_input(path)
        result = _verify_files(claims_path, extract_paths, output, report_path=report_path, progress=progress,
                               trust=trust, lang=lang, partitions=partitions, scheduler=scheduler,
                               workers=workers)
        for logged, described in zip(record.inputs, result.inputs):
            logged.update(source=described["source"], rows=described["rows"])
            if "signer" in described:
                logged["signer"] = described["signer"]
        record.add_output(result.output, rows=len(result.flags))
        record.add_output(result.report)
        statuses = result.flags["status"].value_counts() if len(result.flags) else {}
        record.details.update(key_id=result.key_id, claim_lines=len(result.flags),
                              statuses={str(k): int(v) for k, v in dict(statuses).items()},
                              trust=trust is not None)
    return result


def _verify_files(claims_path: str | Path, extract_paths: list[str | Path], output: str | Path | None, *,
                  report_path: str | Path | None, progress: Callable[[str], None] | None,
                  trust: str | Path | TrustStore | None, lang: str = "zh", partitions: int | None = None,
                  scheduler: Any = None, workers: int | None = None) -> VerifyResult:
    from matchkit.io.hashed.reader import check_signature
    from matchkit.report.catalogue import check_language
    from matchkit.verify import verify_tables

    check_language(lang)
    say = progress or (lambda step: None)

    for target, label in ((output, "flags output"), (report_path, "report")):
        _check_output_path(target, label)  # refuse a bad output path before the long run, not after it
    signers: dict[str, str] = {}
    if trust is not None:
        say("checking signatures")
        store = trust if isinstance(trust, TrustStore) else load_trust_dir(trust)
        for path in [claims_path, *extract_paths]:
            info = check_signature(path, store)
            signers[str(path)] = f"{info.signer} ({info.key_id})"
    claims_file, extract_files = open_inputs(claims_path, extract_paths)
    files = [claims_file, *extract_files]
    if partitions is None:
        from matchkit.jobs.verify_partitioned import default_partitions

        partitions = default_partitions(claims_file.manifest.rows_hashed)
        if scheduler is not None:  # on Dask, at least a few tasks to spread
            partitions = max(partitions, 4)
    if (partitions == 1 and scheduler is None) or claims_file.manifest.rows_hashed == 0:
        say("reading hashed files")
        claims, sources, files = load_hashed_inputs(claims_path, extract_paths,
                                                    opened=(claims_file, extract_files))
        flags = verify_tables(claims, sources, progress=progress)
        del claims, sources
    else:
        from matchkit.jobs.verify_partitioned import verify_partitioned

        spill_dir = Path(output).parent if output else None
        flags = verify_partitioned(claims_file, extract_files, partitions=partitions or 1, scheduler=scheduler,
                                   workers=workers, spill_dir=spill_dir, progress=progress)
    inputs = [{"name": f.path.name, "source": f.source, "rows": f.manifest.rows_hashed,
               "digest": f.digest} for f in files]
    for described, path in zip(inputs, [claims_path, *extract_paths]):
        if str(path) in signers:
            described["signer"] = signers[str(path)]
    out_path = Path(output) if output else None
    meta = {"key_id": files[0].manifest.key_id, "encoding_version": files[0].manifest.encoding_version,
            "purpose": files[0].manifest.purpose, "inputs": inputs}
    if out_path:
        say(f"writing {out_path.name}")
        write_flags(flags, out_path, lang=lang, meta=meta)
    report = Path(report_path) if report_path else None
    if report:
        from matchkit.report.html import write_report

        say(f"writing {report.name}")
        try:
            write_report(flags, report, meta=meta, lang=lang, flags_name=out_path.name if out_path else None)
        except BaseException:
            remove_published(out_path)  # a failed run leaves neither the flags nor the report
            raise
    return VerifyResult(flags, out_path, report, inputs, key_id=files[0].manifest.key_id)


def _check_output_path(path: str | Path | None, label: str) -> None:
    if path is None:
        return
    target = Path(path)
    check_output_path(target, label)
    if label == "flags output" and target.suffix.lower() not in FLAGS_SUFFIXES:
        raise MatchkitError("flags output must end in .csv, .parquet or .xlsx", path=target)


FLAGS_SUFFIXES = (".csv", ".parquet", ".xlsx")


def write_flags(flags: Any, path: Path, *, lang: str = "zh", meta: dict[str, Any] | None = None) -> None:
    """Flags as CSV (UTF-8 with BOM so Excel shows it right), Parquet, or an Excel workbook for tax staff
    (``matchkit.report.workbook``: texts in ``lang``, summary sheet), chosen by extension; atomic."""
    suffix = path.suffix.lower()
    if suffix not in FLAGS_SUFFIXES:
        raise MatchkitError("flags output must end in .csv, .parquet or .xlsx", path=path)
    if suffix == ".xlsx":
        from matchkit.report.workbook import write_workbook

        write_workbook(flags, path, lang=lang, meta=meta)
        return
    if suffix == ".csv":
        write_atomically(path, "flags output", lambda temp: flags.to_csv(temp, index=False, encoding="utf-8-sig",
                                                                          float_format="%.2f"))
    else:
        write_atomically(path, "flags output", lambda temp: flags.to_parquet(temp, index=False))
