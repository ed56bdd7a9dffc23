"""recordlinkage on hashed files: its indexers, comparisons and classifiers over matchkit's keyed encodings.

A recordlinkage user keeps their workflow and never sees a raw value: the DataFrames are hashed linkage files (exact
tokens ``<field>_tok``, Bloom filters ``<field>_bf``, blocking keys ``_blk_<pass>``), the indexer blocks on a
pass's keyed blocking key, and the comparisons are token equality and Dice similarity of Bloom filters::

    import recordlinkage as rl
    from matchkit.recordlinkage import HashedBlock, compare_features, read_hashed

    left, right = read_hashed("A.parquet"), read_hashed("B.parquet")
    pairs = rl.Index().add(HashedBlock("ssid")).add(HashedBlock("dob_given")).index(left, right)
    features = rl.Compare(compare_features(left)).compute(pairs, left, right)
    links = rl.ECMClassifier().fit_predict(features)

recordlinkage is an optional extra (``pip install 'matchkit[recordlinkage]'``), imported on first use of
:class:`HashedBlock`, :class:`HashedExact`, :class:`HashedDice` or :func:`compare_features`; :func:`read_hashed`
needs only pandas.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from matchkit.errors import ManifestError, MatchkitError

if TYPE_CHECKING:
    import pandas as pd

EXTRA = "pip install 'matchkit[recordlinkage]'"
DEFAULT_DICE_THRESHOLD = 0.8  # compare_features' binary cut of a Dice similarity (ECM wants binary features)


class MissingExtraError(ImportError):
    """recordlinkage is not installed."""


def _recordlinkage_base() -> Any:
    try:
        return importlib.import_module("recordlinkage.base")
    except ModuleNotFoundError as exc:
        raise MissingExtraError(f"matchkit.recordlinkage needs the recordlinkage package: {EXTRA}") from exc


def read_hashed(path: str | Path) -> pd.DataFrame:
    """A hashed linkage file as a DataFrame indexed by record id (the schema's ``record_id``, else the input line
    number ``_line``): one column per exact token (bytes), Bloom filter (bytes) and blocking key (nullable Int64).
    The file's digest is checked on opening (:func:`matchkit.io.hashed.reader.open_hashed`); the manifest, as its
    JSON object (:meth:`matchkit.io.hashed.format.Manifest.to_json`), is in ``frame.attrs["matchkit_manifest"]``."""
    import pandas as pd
    import pyarrow as pa

    from matchkit.io.hashed.format import LINE_COLUMN
    from matchkit.io.hashed.reader import open_hashed

    hashed = open_hashed(path)
    manifest = hashed.manifest
    if manifest.linkage is None:
        raise ManifestError("is not a linkage file: read_hashed takes files hashed with a linkage schema "
                            "(kind = \"link\")", path=hashed.path)
    table = hashed.read()
    index_column = manifest.linkage.record_id or LINE_COLUMN

    def types(kind: pa.DataType) -> Any:
        return pd.Int64Dtype() if pa.types.is_int64(kind) else None  # 64-bit keys exact, nulls kept

    frame = table.to_pandas(types_mapper=types)
    frame = frame.set_index(index_column)
    if index_column != LINE_COLUMN and LINE_COLUMN in frame.columns:
        frame = frame.drop(columns=LINE_COLUMN)
    frame.attrs["matchkit_manifest"] = manifest.to_json()  # plain JSON data: pandas copies attrs deeply
    return frame


def _tokens(series: pd.Series) -> Any:
    """A column of the DataFrame as matchkit's flat token form."""
    import pyarrow as pa

    from matchkit.link.token_columns import arrow_tokens

    return arrow_tokens(pa.array(series.array if hasattr(series, "array") else series, from_pandas=True))


def _exact(left: pd.Series, right: pd.Series, missing_value: float) -> np.ndarray:
    from matchkit.link.compare import exact_token

    positions = np.arange(len(left), dtype=np.int64)
    result = exact_token(_tokens(left), _tokens(right), positions, positions)
    return np.where(np.isnan(result), missing_value, result)


def _dice(left: pd.Series, right: pd.Series, threshold: float | None, missing_value: float) -> np.ndarray:
    from matchkit.link.compare import dice

    positions = np.arange(len(left), dtype=np.int64)
    similarity = dice(_tokens(left), _tokens(right), positions, positions)
    missing = np.isnan(similarity)
    if threshold is not None:
        similarity = (similarity >= threshold).astype(np.float64)
    return np.where(missing, missing_value, similarity)


_CLASSES: dict[str, type] = {}


def _build_classes() -> dict[str, type]:
    if _CLASSES:
        return _CLASSES
    base = _recordlinkage_base()
    import pandas as pd

    from matchkit.io.hashed.format import bloom_column, token_column

    class HashedBlock(base.BaseIndexAlgorithm):  # type: ignore[misc, name-defined]
        """Candidate pairs of one of the files' ``[[blocking]]`` passes: records sharing the pass's keyed blocking
        key (column ``_blk_<pass_name>``). A key held by more than ``max_block_size`` right-hand records is
        skipped, as ``matchkit link`` does."""

        def __init__(self, pass_name: str, max_block_size: int | None = None, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            from matchkit.io.hashed.format import blocking_column
            from matchkit.settings import DEFAULT_MAX_BLOCK_SIZE

            self.pass_name = pass_name
            self.column = blocking_column(pass_name)
            self.max_block_size = DEFAULT_MAX_BLOCK_SIZE if max_block_size is None else max_block_size

        def __repr__(self) -> str:
            return f"<HashedBlock {self.pass_name!r}>"

        def _keys(self, frame: pd.DataFrame) -> Any:
            if self.column not in frame.columns:
                passes = sorted(c.removeprefix("_blk_") for c in frame.columns if str(c).startswith("_blk_"))
                raise MatchkitError(f"no blocking pass {self.pass_name!r} in this hashed file; its passes: "
                                    f"{', '.join(passes) or 'none'}")
            return _tokens(frame[self.column])

        def _link_index(self, df_a: pd.DataFrame, df_b: pd.DataFrame) -> pd.MultiIndex:
            from matchkit.link.blocking import BlockingPass, block_pass, sorted_unique
            from matchkit.link.token_columns import TokenFrame

            left = TokenFrame.from_columns(len(df_a), {self.column: self._keys(df_a)})
            right = TokenFrame.from_columns(len(df_b), {self.column: self._keys(df_b)})
            lpos, rpos, _ = block_pass(left, right, BlockingPass(self.pass_name, self.column),
                                       max_block_size=self.max_block_size)
            width = max(len(df_b), 1)
            codes = sorted_unique(lpos * width + rpos)
            return pd.MultiIndex.from_arrays([df_a.index[codes // width], df_b.index[codes % width]])

        def _dedup_index(self, df_a: pd.DataFrame) -> pd.MultiIndex:
            pairs = self._link_index(df_a, df_a)
            positions = df_a.index.get_indexer(pairs.get_level_values(0)), df_a.index.get_indexer(
                pairs.get_level_values(1))
            return pairs[positions[0] > positions[1]]  # recordlinkage's lower triangle, each pair once

    class HashedExact(base.BaseCompareFeature):  # type: ignore[misc, name-defined]
        """1 where the two records' exact tokens of ``field`` are equal, 0 where they differ, ``missing_value``
        where either has none."""

        name = "hashed_exact"
        description = "Equality of keyed exact tokens."

        def __init__(self, field: str, label: str | None = None, missing_value: float = 0.0) -> None:
            column = token_column(field)
            super().__init__(column, column, label=label or field)
            self.missing_value = missing_value

        def _compute_vectorized(self, s_left: pd.Series, s_right: pd.Series) -> pd.Series:
            return pd.Series(_exact(s_left, s_right, self.missing_value), index=s_left.index)

    class HashedDice(base.BaseCompareFeature):  # type: ignore[misc, name-defined]
        """Dice similarity of the two records' Bloom filters of ``field``, in [0, 1]; with ``threshold`` 1 where it
        reaches the threshold, else 0 (recordlinkage's ``String(..., threshold=...)`` convention)."""

        name = "hashed_dice"
        description = "Dice similarity of keyed Bloom filters."

        def __init__(self, field: str, threshold: float | None = None, label: str | None = None,
                     missing_value: float = 0.0) -> None:
            column = bloom_column(field)
            super().__init__(column, column, label=label or field)
            self.threshold = threshold
            self.missing_value = missing_value

        def _compute_vectorized(self, s_left: pd.Series, s_right: pd.Series) -> pd.Series:
            return pd.Series(_dice(s_left, s_right, self.threshold, self.missing_value), index=s_left.index)

    _CLASSES.update(HashedBlock=HashedBlock, HashedExact=HashedExact, HashedDice=HashedDice)
    return _CLASSES


def compare_features(frame: pd.DataFrame, *, dice_threshold: float | None = DEFAULT_DICE_THRESHOLD) -> list[Any]:
    """One comparison per encoded field of a hashed frame (from :func:`read_hashed`): :class:`HashedDice` where
    the field has a Bloom filter (binary at ``dice_threshold``, as recordlinkage's ECM classifier expects; None
    for the similarity itself), else :class:`HashedExact`. For ``rl.Compare(compare_features(left))``."""
    classes = _build_classes()
    fields = (frame.attrs.get("matchkit_manifest") or {}).get("fields")
    if fields is None:  # a frame not from read_hashed: the columns say which encodings there are
        names = {str(c)[: -len(suffix)] for c in frame.columns for suffix in ("_tok", "_bf") if str(c).endswith(suffix)}
        fields = {name: {"encodings": [e for e, s in (("exact", "_tok"), ("bloom", "_bf"))
                                       if f"{name}{s}" in frame.columns]} for name in sorted(names)}
    features = []
    for name, spec in fields.items():
        encodings = spec.get("encodings", [])
        if "bloom" in encodings:
            features.append(classes["HashedDice"](name, threshold=dice_threshold))
        elif "exact" in encodings:
            features.append(classes["HashedExact"](name))
    if not features:
        raise MatchkitError("this frame has no encoded field (no <field>_tok or <field>_bf column)")
    return features


def __getattr__(name: str) -> Any:
    if name in ("HashedBlock", "HashedExact", "HashedDice"):
        return _build_classes()[name]
    raise AttributeError(f"module 'matchkit.recordlinkage' has no attribute {name!r}")


__all__ = ["MissingExtraError", "compare_features", "read_hashed"]  # and HashedBlock, HashedExact, HashedDice (lazy)
