"""Attacks on matchkit's name encodings, so that hardening is judged by a measured attack, not by argument (issue 6).

Threat model. The attacker holds one hashed file and the exact frequency table of the names of the population in
it (every full name with its count, hence also surnames and given names), optionally broken down by birth year
(published cohort name statistics; claims files keep the subject's birth year-month in clear). It never holds the
key. It knows the public parameters of the encoding (Bloom filter size, positions per q-gram, the q-gram scheme and
the mk1 variant scheme): they are in the manifest and in the source. It can group records by a salt only where the
file shows the salt: a birth-date token column (``*_dob_tok`` in mk1 files, an exact ``date_of_birth`` field in a
linkage file) groups records by birth date, a clear birth year-month groups them by year.

Attacks, all returning one guessed name id per record (-1 = no guess):

* :func:`frequency_attack` (Kuzu et al. 2011; Christen et al. 2017): count identical encodings within each visible
  group and align them with the names by frequency rank. Where the attacker's table is exact for the group, an
  encoding whose count no other name shares is an *anchor*: certainly that name.
* :func:`bloom_pattern_attack` (after Christen, Ranbaduge, Vatsalan and Schnell 2018): mine the bit positions that
  frequent q-grams set, label them by comparing the support of each mined pattern with the known q-gram
  frequencies in a recursive partition of the filters (the paper's algorithm), then bootstrap: group the names by
  which known features they hold, put every filter in the group its bits select, learn the positions of a further
  q-gram from the filters whose candidate names probably hold it (the dominant bit pattern among them, kept only if
  its support over the whole group fits that q-gram and never contradicts the known features), repeat; finally
  guess a name only where one name holds most of the candidates' weight. Names whose characters are a permutation
  of each other (张勇华, 张华勇) have the same q-grams, hence the same filter: no attack tells them apart.
* :func:`mk1_structural_attack`: mk1 name tokens are salted by the full birth date, so only equality *within* a
  birth-date group is visible. For each record the attacker sees how many other records of its group share each of
  its tokens (exact, pinyin, pinyin minus one syllable) and scores every candidate name by the likelihood of those
  counts under the known name distribution; it guesses the best-scoring name for every record.

Hardening prototypes that the library lacks: :func:`balance` (filter concatenated with its complement under a
keyed bit permutation, Schnell and Borgs 2016) with the attacker's first step against it, :func:`unbalance`; and
:func:`diffuse` (each output bit the XOR of a few keyed input bits, Armknecht, Heng and Schnell 2023).

No function here sees the key except the hardening transforms, which take a derived sub-key as the library would.
"""

from __future__ import annotations

import hmac
import math
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from matchkit.encode.fields import qgrams
from matchkit.encode.person import name_variants
from matchkit.normalize.names import name_pinyin

NO_GUESS = -1


# --- the attacker's plaintext knowledge ---------------------------------------------------------------------------
@dataclass
class NameTable:
    """Every distinct (normalised) name of the population with its count, overall and per birth year."""

    names: np.ndarray  # object: the name of each name id
    counts: np.ndarray  # float64: population count per name id
    year_counts: dict[int, tuple[np.ndarray, np.ndarray]]  # year -> (name ids, counts)

    @classmethod
    def build(cls, name_ids: np.ndarray, names: np.ndarray, years: np.ndarray) -> NameTable:
        n_names = len(names)
        counts = np.bincount(name_ids, minlength=n_names).astype(np.float64)
        keys, key_counts = np.unique(years.astype(np.int64) * n_names + name_ids, return_counts=True)
        key_years = keys // n_names
        boundaries = np.flatnonzero(np.diff(key_years)) + 1
        year_counts = {
            int(key_years[start]): ((keys[start:end] % n_names), key_counts[start:end].astype(np.float64))
            for start, end in zip(np.r_[0, boundaries], np.r_[boundaries, len(keys)], strict=True)
        }
        return cls(names=names, counts=counts, year_counts=year_counts)

    def weights(self, year: int | None) -> np.ndarray:
        """Name weights overall (``year=None``) or among the people born in ``year``."""
        if year is None:
            return self.counts
        weights = np.zeros(len(self.names))
        ids, counts = self.year_counts.get(year, (np.zeros(0, np.int64), np.zeros(0)))
        weights[ids] = counts
        return weights


@dataclass(frozen=True)
class Knowledge:
    """What the attacker expects of one group of records.

    ``exact``: the weights are the group's own name counts (the table describes exactly these people), so
    frequencies match without sampling error. Otherwise the group is a sample of the table's people, and
    ``slack`` is the relative mismatch the attacker allows on top of sampling error (the overall table applied to
    one birth cohort is off by the cohort's own naming fashion; a cohort's table applied to one birth date is not).
    """

    key: tuple[str, int | None]
    weights: np.ndarray
    exact: bool
    slack: float = 0.0


class KnowledgeModel:
    """Which table the attacker applies to a group: the overall one, or the one of the group's birth year."""

    def __init__(self, table: NameTable, level: str, group_year: Callable[[int], int | None],
                 exact_groups: Callable[[int], bool], slack: float) -> None:
        if level not in ("global", "year"):
            raise ValueError("knowledge level is 'global' or 'year'")
        self.table = table
        self.level = level
        self.slack = slack
        self._group_year = group_year
        self._exact_groups = exact_groups
        self._cache: OrderedDict[tuple[str, int | None], np.ndarray] = OrderedDict()

    def __call__(self, group: int) -> Knowledge:
        year = self._group_year(group) if self.level == "year" else None
        key = (self.level, year)
        weights = self._cache.get(key)
        if weights is None:
            weights = self.table.weights(year)
            self._cache[key] = weights
            if len(self._cache) > 4:
                self._cache.popitem(last=False)
        exact = self._exact_groups(group)
        return Knowledge(key=key, weights=weights, exact=exact, slack=0.0 if exact else self.slack)


# --- q-gram features ------------------------------------------------------------------------------------------------
_FEATURE_TAGS = np.random.default_rng(0x7461).integers(1, 2**63, 1 << 16, dtype=np.uint64)  # random tag per feature


@dataclass
class FeatureTable:
    """Names x features, where a feature is a set of q-grams that occur in exactly the same names (``ng`` and
    ``g `` always do): a Bloom filter cannot tell such q-grams apart, so neither does the attacker."""

    labels: list[str]
    grams_per_feature: np.ndarray
    indptr: np.ndarray  # CSR over name ids
    indices: np.ndarray  # feature ids

    @property
    def n_features(self) -> int:
        return len(self.labels)

    @classmethod
    def build(cls, names: Sequence[str]) -> FeatureTable:
        gram_ids: dict[str, int] = {}
        gram_of_pair: list[int] = []
        lengths = np.zeros(len(names), dtype=np.int64)
        for row, name in enumerate(names):
            grams = qgrams("name", name)
            lengths[row] = len(grams)
            gram_of_pair.extend(gram_ids.setdefault(gram, len(gram_ids)) for gram in grams)
        grams_array = np.asarray(gram_of_pair, dtype=np.int64)
        rows = np.repeat(np.arange(len(names), dtype=np.int64), lengths)
        # q-grams with the same set of names get the same (xor of random row tags, size) fingerprint
        row_tags = np.random.default_rng(0x6D6B).integers(0, 2**63, len(names), dtype=np.uint64)
        order = np.argsort(grams_array, kind="stable")
        starts = np.r_[0, np.flatnonzero(np.diff(grams_array[order])) + 1]
        fingerprints = np.bitwise_xor.reduceat(row_tags[rows[order]], starts)
        sizes = np.diff(np.r_[starts, len(order)])
        fingerprint_keys = pd.MultiIndex.from_arrays([fingerprints, sizes])
        feature_of_gram, unique_keys = pd.factorize(fingerprint_keys)
        gram_labels = list(gram_ids)
        labels_per_feature: list[list[str]] = [[] for _ in range(len(unique_keys))]
        for gram, feature in enumerate(feature_of_gram.tolist()):
            labels_per_feature[feature].append(gram_labels[gram])
        pair_keys = np.unique(rows * len(unique_keys) + feature_of_gram[grams_array])
        pair_rows = pair_keys // len(unique_keys)
        indptr = np.zeros(len(names) + 1, dtype=np.int64)
        np.cumsum(np.bincount(pair_rows, minlength=len(names)), out=indptr[1:])
        return cls(labels=["|".join(sorted(grams)) for grams in labels_per_feature],
                   grams_per_feature=np.array([len(g) for g in labels_per_feature], dtype=np.int64),
                   indptr=indptr, indices=(pair_keys % len(unique_keys)).astype(np.int64))

    def encoding_classes(self) -> np.ndarray:
        """A class id per name: names with the same features (张伟华, 张华伟) have identical unsalted filters, so
        the attacker ranks such classes, not names."""
        positions, feature_ids = self.gather(np.arange(len(self.indptr) - 1))
        starts = np.flatnonzero(np.r_[True, positions[1:] != positions[:-1]])
        fingerprint = np.bitwise_xor.reduceat(_FEATURE_TAGS[feature_ids], starts)
        return pd.factorize(fingerprint)[0].astype(np.int64)

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(position in ``rows``, feature) for every feature of the given name ids."""
        starts = self.indptr[rows]
        lengths = self.indptr[rows + 1] - starts
        positions = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
        offsets = np.arange(int(lengths.sum()), dtype=np.int64) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        return positions, self.indices[starts[positions] + offsets]


# --- bit columns ----------------------------------------------------------------------------------------------------
def bit_columns(packed: np.ndarray) -> np.ndarray:
    """Transpose packed filters (``n x bytes``, little-endian bits) into ``(bits, words)`` uint64 record bitsets:
    bit *i* of column *p* is bit *p* of filter *i*. Supports of position sets are then ANDs and popcounts."""
    count, width = packed.shape
    words = (count + 63) // 64
    out = np.zeros((width * 8, words * 8), dtype=np.uint8)
    step = 1 << 17
    for start in range(0, count, step):
        bits = np.unpackbits(packed[start : start + step], axis=1, bitorder="little")
        block = np.packbits(bits, axis=0, bitorder="little")
        out[:, start // 8 : start // 8 + block.shape[0]] = block.T
    return out.view(np.uint64)


def _popcount(bits: np.ndarray) -> int:
    return int(np.bitwise_count(bits).sum())


def _all_records(count: int) -> np.ndarray:
    bits = np.zeros(((count + 63) // 64) * 64, dtype=np.uint8)
    bits[:count] = 1
    return np.packbits(bits, bitorder="little").view(np.uint64)


def _members(bits: np.ndarray, count: int) -> np.ndarray:
    return np.unpackbits(bits.view(np.uint8), bitorder="little")[:count].astype(bool)


def _support(columns: np.ndarray, records: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Records (bitset) among ``records`` whose filters have every one of ``positions`` set."""
    if len(positions) == 0:
        return records.copy()
    return records & np.bitwise_and.reduce(columns[positions], axis=0)


def row_codes(packed: np.ndarray) -> np.ndarray:
    """A 64-bit fingerprint per filter row, equal for equal filters (collisions ~n^2 / 2^65: none at 10^6)."""
    padded = packed
    if packed.shape[1] % 8:
        padded = np.concatenate([packed, np.zeros((len(packed), 8 - packed.shape[1] % 8), np.uint8)], axis=1)
    words = np.ascontiguousarray(padded).view(np.uint64)
    multipliers = np.asarray(np.random.default_rng(0x636F6465).integers(1, 2**63, words.shape[1], dtype=np.uint64))
    multipliers |= np.uint64(1)
    code = np.zeros(len(words), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in range(words.shape[1]):
            code = (code ^ words[:, column]) * multipliers[column]
            code ^= code >> np.uint64(29)
    return code.view(np.int64)


# --- frequency alignment --------------------------------------------------------------------------------------------
def frequency_attack(codes: np.ndarray, groups: np.ndarray, knowledge: Callable[[int], Knowledge],
                     *, classes: np.ndarray | None = None, min_count: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Rank-align identical encodings with names, per visible group.

    ``classes`` (a class id per name, default: every name its own class) merges names that encode identically.
    Within each group the encodings are ranked by count and the classes by the attacker's expected count; the
    *r*-th encoding is guessed to be the *r*-th class (its most frequent name), for every encoding seen at least
    ``min_count`` times (a singleton carries no frequency signal). Returns ``(guess per record, anchored per
    record)``: an encoding is anchored when its count is unique in the group and equal to the count of exactly one
    class in an exact table; its class, hence what it encodes, is then certain.
    """
    frame = pd.DataFrame({"group": groups, "code": codes})
    sizes = frame.groupby(["group", "code"], sort=False).size().rename("count").reset_index()
    sizes = sizes.sort_values(["group", "count", "code"], ascending=[True, False, True], kind="stable")
    group_values = sizes["group"].to_numpy()
    starts = np.r_[0, np.flatnonzero(np.diff(group_values)) + 1]
    ends = np.r_[starts[1:], len(sizes)]
    ranks = np.arange(len(sizes)) - np.repeat(starts, ends - starts)
    counts = sizes["count"].to_numpy()
    names = np.full(len(sizes), NO_GUESS, dtype=np.int64)
    anchored = np.zeros(len(sizes), dtype=bool)
    rankings: dict[tuple[str, int | None], tuple[np.ndarray, np.ndarray]] = {}
    for start, end in zip(starts.tolist(), ends.tolist(), strict=True):
        info = knowledge(int(group_values[start]))
        ranking = rankings.get(info.key)
        if ranking is None:
            ranking = _class_ranking(info.weights, classes)
            rankings[info.key] = ranking
        top_names, class_weights = ranking
        aligned = (counts[start:end] >= min_count) & (ranks[start:end] < len(top_names))
        names[start:end][aligned] = top_names[ranks[start:end][aligned]]
        if info.exact:
            anchored[start:end] = _unique_count_matches(counts[start:end], class_weights)
    sizes["name"] = names
    sizes["anchored"] = anchored
    merged = frame.merge(sizes[["group", "code", "name", "anchored"]], on=["group", "code"], how="left")
    return merged["name"].to_numpy(dtype=np.int64), merged["anchored"].to_numpy(dtype=bool)


def _class_ranking(weights: np.ndarray, classes: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(most frequent name of each class, class weight), classes by decreasing weight."""
    names = np.flatnonzero(weights > 0)
    if classes is None:
        order = np.argsort(-weights[names], kind="stable")
        return names[order], weights[names][order]
    class_of_name = np.unique(classes[names], return_inverse=True)[1]
    class_weights = np.bincount(class_of_name, weights=weights[names])
    by_weight = np.lexsort((-weights[names], class_of_name))  # heaviest name first within each class
    first = np.r_[True, class_of_name[by_weight][1:] != class_of_name[by_weight][:-1]]
    top_name = names[by_weight[first]]  # in class order
    order = np.argsort(-class_weights, kind="stable")
    return top_name[order], class_weights[order]


def _unique_count_matches(encoding_counts: np.ndarray, name_counts_ranked: np.ndarray) -> np.ndarray:
    """True for ranked encodings whose count occurs once among encodings and once among names (then rank
    alignment is certain, since both lists are sorted by count)."""
    values, multiplicity = np.unique(encoding_counts, return_counts=True)
    name_values, name_multiplicity = np.unique(np.rint(name_counts_ranked).astype(np.int64), return_counts=True)
    once = set(values[multiplicity == 1].tolist()) & set(name_values[name_multiplicity == 1].tolist())
    return np.isin(encoding_counts, np.fromiter(once, dtype=np.int64, count=len(once))) & (encoding_counts >= 2)


# --- pattern mining on Bloom filters --------------------------------------------------------------------------------
@dataclass(frozen=True)
class PatternParams:
    """Tuning of the pattern-mining attack (the defaults were tuned on unhardened filters, to help the attacker)."""

    min_support: int = 10  # records: a pattern seen in fewer filters is noise
    min_positions: int = 12  # fewer learnt positions would be set by chance in too many filters
    closure_slack: float = 0.002  # share of a pattern's filters that may miss a position still taken as its own
    prune_gain: float = 0.05  # a position whose removal grows the support by more than this is another q-gram's
    z: float = 4.0  # frequency tolerance in standard deviations
    coincidence: float = 0.0002  # share of filters that may cover a pattern by chance
    tries: int = 3  # patterns grown per partition node
    root_tries: int = 16
    max_nodes: int = 2500  # partition nodes per group
    mine_sample: int = 200_000  # filters per group used for mining and learning (all are re-identified)
    seed_probability: float = 0.5  # P(feature | candidates) for a filter to help learn that feature's positions
    max_seeds: int = 600
    min_seeds: int = 8
    guess_posterior: float = 0.5  # guess a name only when it holds this share of the candidates' weight
    rounds: int = 8


class _Partitions:
    """The plaintext side: which names a partition node holds and their feature frequencies; and the grouping of
    names by known features. Both repeat across salt groups (same table, same few features found), so they are
    memoised."""

    def __init__(self, features: FeatureTable, limit: int = 4096) -> None:
        self.features = features
        self.limit = limit
        self._cache: OrderedDict[tuple[object, ...], tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._classes: OrderedDict[tuple[object, ...], _Classes] = OrderedDict()

    def classes(self, knowledge: Knowledge, known: Sequence[int], params: PatternParams) -> _Classes:
        """:func:`_name_classes`, memoised while few features are known (many groups then share the result)."""
        if len(known) > 12:
            return _name_classes(self.features, knowledge, known, params)
        key = (knowledge.key, frozenset(known))
        cached = self._classes.get(key)
        if cached is None:
            cached = _name_classes(self.features, knowledge, known, params)
            self._classes[key] = cached
            if len(self._classes) > 256:
                self._classes.popitem(last=False)
        else:
            self._classes.move_to_end(key)
        return cached

    def node(self, knowledge: Knowledge, path: tuple[tuple[int, bool], ...]) -> tuple[np.ndarray, np.ndarray]:
        """``(name ids, feature frequency)`` of the names that have / lack the features along ``path``."""
        key = (knowledge.key, path)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return cached
        if not path:
            rows = np.flatnonzero(knowledge.weights > 0)
        else:
            parent, _ = self.node(knowledge, path[:-1])
            feature, present = path[-1]
            positions, feature_ids = self.features.gather(parent)
            has = np.zeros(len(parent), dtype=bool)
            has[positions[feature_ids == feature]] = True
            rows = parent[has == present]
        weights = knowledge.weights[rows]
        total = weights.sum()
        if total > 0:
            positions, feature_ids = self.features.gather(rows)
            frequency = np.bincount(feature_ids, weights=weights[positions],
                                    minlength=self.features.n_features) / total
        else:
            frequency = np.zeros(self.features.n_features)
        result = (rows, frequency)
        self._cache[key] = result
        if len(self._cache) > self.limit:
            self._cache.popitem(last=False)
        return result


def _tolerance(expected: np.ndarray, size: int, frequency: np.ndarray, knowledge: Knowledge, sampled: float,
               params: PatternParams) -> np.ndarray:
    """How far an observed support may be from the expected one: sampling error (none when the table is exact and
    every filter is used; ``sampled`` is the share of the group's filters used), the knowledge's slack, and a few
    filters whose bits happen to cover the pattern."""
    variance = size * frequency * (1 - frequency) * ((1 - sampled) if knowledge.exact else 1.0)
    return params.z * np.sqrt(variance) + knowledge.slack * expected + 1.0 + params.coincidence * size


def _label(support: int, size: int, frequency: np.ndarray, knowledge: Knowledge, sampled: float,
           params: PatternParams) -> int | None:
    """The feature whose expected support in the node is within tolerance of the mined pattern's and clearly
    closer than any other feature's; None when there is no such feature."""
    expected = frequency * size
    tolerance = _tolerance(expected, size, frequency, knowledge, sampled, params)
    distance = np.where((frequency > 0) & (frequency < 1 - 1e-12), np.abs(support - expected), np.inf)
    order = np.argsort(distance / tolerance)
    best = int(order[0])
    if distance[best] > tolerance[best]:
        return None
    if len(order) > 1:
        second = int(order[1])
        if distance[second] <= tolerance[second] and distance[second] < 3 * distance[best] + 2:
            return None
    return best


def _prune(columns: np.ndarray, records: np.ndarray, chosen: list[int],
           params: PatternParams) -> tuple[list[int], np.ndarray]:
    """Drop, one at a time, the position whose removal grows the support most, while that growth is large: such a
    position belongs to a q-gram that only some of the pattern's filters hold."""
    chosen = list(chosen)
    while len(chosen) > 1:
        stack = columns[chosen]
        prefix = np.bitwise_and.accumulate(stack, axis=0)
        suffix = np.bitwise_and.accumulate(stack[::-1], axis=0)[::-1]
        full = _popcount(records & prefix[-1])
        without = np.empty(len(chosen), dtype=np.int64)
        without[0] = _popcount(records & suffix[1])
        without[-1] = _popcount(records & prefix[-2])
        for index in range(1, len(chosen) - 1):
            without[index] = _popcount(records & prefix[index - 1] & suffix[index + 1])
        gain = without - full
        worst = int(np.argmax(gain))
        if gain[worst] <= params.prune_gain * full + 2:
            break
        chosen.pop(worst)
    return chosen, _support(columns, records, np.asarray(chosen, dtype=np.int64))


def _grow(columns: np.ndarray, records: np.ndarray, excluded: np.ndarray, seed: int,
          params: PatternParams) -> tuple[np.ndarray, np.ndarray] | None:
    """Greedy maximal pattern from one seed position: add the position set in most of the current filters until
    the pattern is long enough, taking for free every position set in (nearly) all of them; then prune."""
    chosen = [seed]
    current = records & columns[seed]
    while True:
        size = _popcount(current)
        if size < params.min_support:
            return None
        counts = np.bitwise_count(columns & current).sum(axis=1, dtype=np.int64)
        counts[excluded] = -1
        counts[chosen] = -1
        full = np.flatnonzero(counts >= size - int(params.closure_slack * size))
        if len(full):
            chosen.extend(full.tolist())
            current = _support(columns, current, full)
            continue
        if len(chosen) >= params.min_positions:
            break
        best = int(np.argmax(counts))
        if counts[best] < params.min_support:
            return None
        chosen.append(best)
        current = current & columns[best]
    chosen, current = _prune(columns, records, chosen, params)
    if len(chosen) < params.min_positions or _popcount(current) < params.min_support:
        return None
    return np.asarray(sorted(chosen), dtype=np.int64), current


def mine_features(columns: np.ndarray, count: int, partitions: _Partitions, knowledge: Knowledge,
                  params: PatternParams, sampled: float = 1.0) -> dict[int, np.ndarray]:
    """Christen et al.'s recursive partition: in each node, grow a frequent pattern, label it with the one feature
    whose frequency among the node's names matches its support, split filters and names on it, recurse."""
    discoveries: dict[int, list[np.ndarray]] = defaultdict(list)
    stack: list[tuple[tuple[tuple[int, bool], ...], np.ndarray]] = [((), _all_records(count))]
    nodes = 0
    while stack and nodes < params.max_nodes:
        path, records = stack.pop()
        size = _popcount(records)
        if size < 2 * params.min_support:
            continue
        nodes += 1
        names, frequency = partitions.node(knowledge, path)
        if len(names) == 0:
            continue
        counts = np.bitwise_count(columns & records).sum(axis=1, dtype=np.int64)
        always = counts >= size - int(params.closure_slack * size)
        tried = always.copy()
        split: tuple[int, np.ndarray] | None = None
        for _ in range(params.tries if path else params.root_tries):  # everything hangs on the root's split
            open_positions = np.flatnonzero(~tried)
            if len(open_positions) == 0:
                break
            seed = int(open_positions[np.argmax(counts[open_positions])])
            grown = _grow(columns, records, always, seed, params)
            tried[seed] = True
            if grown is None:
                continue
            positions, support = grown
            tried[positions] = True
            feature = _label(_popcount(support), size, frequency, knowledge, sampled, params)
            if feature is None:
                continue
            discoveries[feature].append(positions)
            if split is None:
                split = (feature, support)
        if split is not None:
            feature, support = split
            stack.append((path + ((feature, False),), records & ~support))
            stack.append((path + ((feature, True),), records & support))
    consolidated: dict[int, np.ndarray] = {}
    for feature, patterns in discoveries.items():
        votes = np.bincount(np.concatenate(patterns), minlength=columns.shape[0])
        consolidated[feature] = np.flatnonzero(votes * 2 > len(patterns))
    return consolidated


def _validate(columns: np.ndarray, count: int, positions: np.ndarray, feature: int, frequency: np.ndarray,
              knowledge: Knowledge, params: PatternParams) -> np.ndarray | None:
    """Prune a feature's positions against the whole group, and keep them only if the filters holding all of
    them are as many as the names holding the feature lead one to expect."""
    if len(positions) < params.min_positions:
        return None
    records = _all_records(count)
    chosen, support = _prune(columns, records, positions.tolist(), params)
    if len(chosen) < params.min_positions:
        return None
    expected = frequency[feature] * count
    tolerance = _tolerance(np.asarray(expected), count, np.asarray(frequency[feature]), knowledge, 1.0, params)
    if abs(_popcount(support) - expected) > float(tolerance):
        return None
    return np.asarray(sorted(chosen), dtype=np.int64)


@dataclass
class _Classes:
    """Names grouped by their signature over the known features (presence of each)."""

    signatures: np.ndarray  # sorted unique uint64 signatures
    top_name: np.ndarray
    posterior: np.ndarray  # weight of the top name / weight of the class
    probable: dict[int, tuple[np.ndarray, np.ndarray]]  # unknown feature -> (classes, P(feature | class)), for
    # the classes where that probability reaches PatternParams.seed_probability
    possible: dict[int, np.ndarray]  # unknown feature -> sorted classes where some name holds it


def _name_classes(features: FeatureTable, knowledge: Knowledge, known: Sequence[int],
                  params: PatternParams) -> _Classes:
    rows = np.flatnonzero(knowledge.weights > 0)
    weights = knowledge.weights[rows]
    positions, feature_ids = features.gather(rows)
    is_known = np.zeros(features.n_features, dtype=bool)
    is_known[list(known)] = True
    tags = np.where(is_known[feature_ids], _FEATURE_TAGS[feature_ids], np.uint64(0))
    row_starts = np.flatnonzero(np.r_[True, positions[1:] != positions[:-1]])  # every name has a feature
    signature = np.bitwise_xor.reduceat(tags, row_starts)
    order = np.lexsort((-weights, signature))
    sorted_signatures = signature[order]
    first = np.r_[True, sorted_signatures[1:] != sorted_signatures[:-1]]
    class_of_sorted = np.cumsum(first) - 1
    class_of_row = np.empty(len(rows), dtype=np.int64)
    class_of_row[order] = class_of_sorted
    totals = np.bincount(class_of_row, weights=weights)
    top = order[first]
    probable: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    unknown_pairs = ~is_known[feature_ids]
    pair_keys = class_of_row[positions[unknown_pairs]] * features.n_features + feature_ids[unknown_pairs]
    pair_weights = weights[positions[unknown_pairs]]
    if len(totals) * features.n_features <= 1 << 24:  # few classes: a dense table is cheaper than sorting
        dense = np.bincount(pair_keys, weights=pair_weights, minlength=len(totals) * features.n_features)
        seen = np.bincount(pair_keys, minlength=len(totals) * features.n_features) > 0
        keys = np.flatnonzero(seen)
        held = dense[keys]
    else:
        keys, inverse = np.unique(pair_keys, return_inverse=True)
        held = np.bincount(inverse, weights=pair_weights)
    key_class = keys // features.n_features
    probability = held / totals[key_class]
    key_features = keys % features.n_features
    by_feature = np.argsort(key_features, kind="stable")
    feature_bounds = np.r_[0, np.flatnonzero(np.diff(key_features[by_feature])) + 1, len(keys)]
    possible = {int(key_features[by_feature[a]]): np.sort(key_class[by_feature[a:b]])
                for a, b in zip(feature_bounds[:-1].tolist(), feature_bounds[1:].tolist(), strict=True) if b > a}
    likely = probability >= params.seed_probability
    likely_features = keys[likely] % features.n_features
    likely_classes, likely_probability = key_class[likely], probability[likely]
    order = np.argsort(likely_features, kind="stable")
    likely_features, likely_classes, likely_probability = (likely_features[order], likely_classes[order],
                                                           likely_probability[order])
    bounds = np.r_[0, np.flatnonzero(np.diff(likely_features)) + 1, len(likely_features)]
    for start, end in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        if end > start:
            probable[int(likely_features[start])] = (likely_classes[start:end], likely_probability[start:end])
    return _Classes(signatures=sorted_signatures[first], top_name=rows[top],
                    posterior=weights[top] / totals, probable=probable, possible=possible)


def _record_classes(columns: np.ndarray, count: int, known: dict[int, np.ndarray],
                    classes: _Classes) -> np.ndarray:
    signature = np.zeros(count, dtype=np.uint64)
    records = _all_records(count)
    for feature, positions in known.items():
        present = _members(_support(columns, records, positions), count)
        signature[present] ^= _FEATURE_TAGS[feature]
    slot = np.searchsorted(classes.signatures, signature)
    slot = np.minimum(slot, len(classes.signatures) - 1)
    return np.where(classes.signatures[slot] == signature, slot, -1)


def bloom_group_attack(packed: np.ndarray, features: FeatureTable, partitions: _Partitions,
                       knowledge: Knowledge, params: PatternParams, rng: np.random.Generator,
                       anchors: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Pattern mining, bootstrapping and re-identification on the filters of one visible group.

    ``anchors`` (name id per record, -1 where none) are names known for certain from frequency alignment; they
    teach positions like any confident filter. Returns ``(guessed name id per record, features learnt)``.
    """
    count = len(packed)
    if count < 2 * params.min_support:
        return np.full(count, NO_GUESS, dtype=np.int64), 0
    sample = np.arange(count)
    if count > params.mine_sample:
        sample = np.sort(rng.choice(count, params.mine_sample, replace=False))
    columns_all = bit_columns(packed)
    columns_sample = columns_all if len(sample) == count else bit_columns(packed[sample])
    _, frequency = partitions.node(knowledge, ())
    known: dict[int, np.ndarray] = {}
    mined = mine_features(columns_sample, len(sample), partitions, knowledge, params, len(sample) / count)
    for feature, positions in mined.items():
        valid = _validate(columns_all, count, positions, feature, frequency, knowledge, params)
        if valid is not None:
            known[feature] = valid
    anchor_features: dict[int, np.ndarray] = {}
    if anchors is not None and (anchors >= 0).any():
        anchored_records = np.flatnonzero(anchors >= 0)
        positions, feature_ids = features.gather(anchors[anchored_records])
        order = np.argsort(feature_ids, kind="stable")
        bounds = np.r_[0, np.flatnonzero(np.diff(feature_ids[order])) + 1, len(order)]
        for start, end in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
            if end > start:
                anchor_features[int(feature_ids[order[start]])] = anchored_records[positions[order[start:end]]]
    classes: _Classes | None = None
    record_class = np.full(count, -1, dtype=np.int64)
    for _ in range(params.rounds):
        if not known and not anchor_features:
            break
        classes = partitions.classes(knowledge, list(known), params)
        record_class = _record_classes(columns_all, count, known, classes) if known else record_class
        learnt = _learn(packed, columns_all, count, sample, record_class, classes, known, anchor_features,
                        frequency, knowledge, params, rng)
        if not learnt:
            break
        known.update(learnt)
    guesses = np.full(count, NO_GUESS, dtype=np.int64)
    if known:
        classes = partitions.classes(knowledge, list(known), params)
        record_class = _record_classes(columns_all, count, known, classes)
        confident = record_class >= 0
        confident[confident] = classes.posterior[record_class[confident]] >= params.guess_posterior
        guesses[confident] = classes.top_name[record_class[confident]]
    if anchors is not None:
        guesses = np.where(anchors >= 0, anchors, guesses)
    return guesses, len(known)


def _learn(packed: np.ndarray, columns: np.ndarray, count: int, sample: np.ndarray, record_class: np.ndarray,
           classes: _Classes, known: dict[int, np.ndarray], anchor_features: dict[int, np.ndarray],
           frequency: np.ndarray, knowledge: Knowledge, params: PatternParams,
           rng: np.random.Generator) -> dict[int, np.ndarray]:
    """Positions of features not known yet. For each, take the filters whose candidate names probably hold it
    (most probable first, plus anchored filters), grow the dominant pattern among them, ignoring the positions of
    known features they all hold, and keep it if its support over the whole group fits the feature."""
    sample_class = record_class[sample]
    observed = sample_class >= 0
    class_order = np.argsort(sample_class[observed], kind="stable")
    sorted_classes = sample_class[observed][class_order]
    sorted_records = sample[observed][class_order]
    learnt: dict[int, np.ndarray] = {}
    for feature in sorted((set(classes.probable) | set(anchor_features)) - set(known)):
        if frequency[feature] * count < params.min_support:
            continue
        seeds = _seed_records(feature, classes, sorted_classes, sorted_records, anchor_features, params, rng)
        if len(seeds) < params.min_seeds:
            continue
        seed_columns = bit_columns(packed[seeds])
        everyone = _all_records(len(seeds))
        excluded = np.zeros(columns.shape[0], dtype=bool)
        for positions in known.values():
            if _popcount(_support(seed_columns, everyone, positions)) >= 0.9 * len(seeds):
                excluded[positions] = True
        shares = np.bitwise_count(seed_columns).sum(axis=1, dtype=np.int64)
        shares[excluded] = -1
        grown = _grow(seed_columns, everyone, excluded, int(np.argmax(shares)),
                      replace(params, min_support=max(3, params.min_seeds // 2)))
        if grown is None:
            continue
        valid = _validate(columns, count, grown[0], feature, frequency, knowledge, params)
        if valid is not None and _consistent(columns, sample, record_class, classes, feature, valid):
            learnt[feature] = valid
    return learnt


def _consistent(columns: np.ndarray, sample: np.ndarray, record_class: np.ndarray, classes: _Classes,
                feature: int, positions: np.ndarray) -> bool:
    """Learnt positions must agree with what the known features already say: (almost) never all set in a
    filter none of whose candidate names holds the feature, (almost) always in one whose candidates all do."""
    present = _members(_support(columns, _all_records(columns.shape[1] * 64), positions), len(record_class))
    sample_class = record_class[sample]
    known_class = sample_class >= 0
    possible = classes.possible.get(feature, np.zeros(0, dtype=np.int64))
    can_hold = np.zeros(len(sample), dtype=bool)
    if len(possible):
        slot = np.minimum(np.searchsorted(possible, sample_class), len(possible) - 1)
        can_hold = possible[slot] == sample_class
    impossible = known_class & ~can_hold
    if impossible.sum() >= 20 and present[sample][impossible].mean() > 0.02:
        return False
    likely = classes.probable.get(feature)
    if likely is not None:
        sure_classes = np.sort(likely[0][likely[1] >= 0.99])
        if len(sure_classes):
            slot = np.minimum(np.searchsorted(sure_classes, sample_class), len(sure_classes) - 1)
            sure = known_class & (sure_classes[slot] == sample_class)
            if sure.sum() >= 10 and present[sample][sure].mean() < 0.9:
                return False
    return True


def _seed_records(feature: int, classes: _Classes, sorted_classes: np.ndarray, sorted_records: np.ndarray,
                  anchor_features: dict[int, np.ndarray], params: PatternParams,
                  rng: np.random.Generator) -> np.ndarray:
    """Up to ``max_seeds`` records that probably hold ``feature``, the most probable first."""
    pieces: list[np.ndarray] = []
    probabilities: list[np.ndarray] = []
    if feature in anchor_features:
        pieces.append(anchor_features[feature])
        probabilities.append(np.full(len(anchor_features[feature]), 2.0))
    likely = classes.probable.get(feature)
    if likely is not None and len(sorted_classes):
        likely_classes, probability = likely
        lo = np.searchsorted(sorted_classes, likely_classes, side="left")
        hi = np.searchsorted(sorted_classes, likely_classes, side="right")
        seen = hi > lo
        if seen.any():
            spans = hi[seen] - lo[seen]
            pieces.append(np.concatenate([sorted_records[a:b] for a, b in zip(lo[seen], hi[seen], strict=True)]))
            probabilities.append(np.repeat(probability[seen], spans))
    if not pieces:
        return np.zeros(0, dtype=np.int64)
    records = np.concatenate(pieces)
    probability = np.concatenate(probabilities) + rng.random(len(records)) * 1e-6  # random among equals
    records, first = np.unique(records, return_index=True)
    probability = probability[first]
    return np.sort(records[np.argsort(-probability, kind="stable")[: params.max_seeds]])


def bloom_pattern_attack(packed: np.ndarray, groups: np.ndarray, features: FeatureTable,
                         knowledge: Callable[[int], Knowledge], params: PatternParams, *, seed: int = 0,
                         anchors: np.ndarray | None = None,
                         progress: Callable[[str], None] | None = None) -> tuple[np.ndarray, dict[str, float]]:
    """:func:`bloom_group_attack` on every visible group. Returns guesses and a summary (groups attacked,
    mean features learnt per attacked group)."""
    rng = np.random.default_rng(seed)
    partitions = _Partitions(features)
    guesses = np.full(len(packed), NO_GUESS, dtype=np.int64)
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    bounds = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1, len(order)]
    attacked = 0
    learnt_total = 0
    for index, (start, end) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True)):
        rows = order[start:end]
        if len(rows) < 2 * params.min_support:
            continue
        info = knowledge(int(sorted_groups[start]))
        group_anchors = anchors[rows] if anchors is not None else None
        guessed, learnt = bloom_group_attack(packed[rows], features, partitions, info, params, rng, group_anchors)
        guesses[rows] = guessed
        attacked += 1
        learnt_total += learnt
        if progress is not None and (index + 1) % 10_000 == 0:
            progress(f"  {index + 1:,}/{len(bounds) - 1:,} groups")
    return guesses, {"groups_attacked": attacked,
                     "features_per_group": learnt_total / attacked if attacked else 0.0}


# --- mk1 name tokens ------------------------------------------------------------------------------------------------
@dataclass
class VariantTable:
    """Every name's mk1 variants (``N:`` exact, ``P:`` pinyin, pinyin minus each syllable) as variant ids."""

    slots: np.ndarray  # (n_names, max_slots) variant id, -1 past a name's last variant
    lengths: np.ndarray  # variants per name
    n_variants: int

    @classmethod
    def build(cls, names: Sequence[str]) -> VariantTable:
        variant_lists = [name_variants(name, name_pinyin(name)) for name in names]
        lengths = np.array([len(v) for v in variant_lists], dtype=np.int64)
        flat, uniques = pd.factorize(pd.Series([v for vs in variant_lists for v in vs], dtype=object))
        slots = np.full((len(names), int(lengths.max())), -1, dtype=np.int64)
        rows = np.repeat(np.arange(len(names)), lengths)
        columns = np.arange(len(flat)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        slots[rows, columns] = flat
        return cls(slots=slots, lengths=lengths, n_variants=len(uniques))

    def share(self, weights: np.ndarray) -> np.ndarray:
        """P(a random person has variant v among their variants), per variant id."""
        ids = self.slots
        held = np.zeros(self.n_variants)
        for column in range(ids.shape[1]):
            # a name whose deletions coincide (买买提) holds that variant once
            repeated = (ids[:, :column] == ids[:, column : column + 1]).any(axis=1)
            use = (ids[:, column] >= 0) & ~repeated
            held += np.bincount(ids[use, column], weights=weights[use], minlength=self.n_variants)
        return held / weights.sum()


def mk1_structural_attack(tokens: np.ndarray, token_counts: np.ndarray, groups: np.ndarray,
                          variants: VariantTable, knowledge: Callable[[int], Knowledge],
                          *, top_k: int = 3000) -> np.ndarray:
    """Maximum-likelihood name per record from how many records of its birth-date group share each of its tokens.

    Candidate *c* for a record with ``m_j`` sharers of token *j* in a group of *n* scores
    ``log w(c) + sum_j [m_j log q(v_j(c)) + (n-1-m_j) log(1-q(v_j(c)))]``, where ``q(v)`` is the share of people
    holding variant *v*; the best of the ``top_k`` most frequent names with the record's token count is guessed
    (a name outside them never scores higher: sharing favours frequent variants).
    """
    records = len(token_counts)
    owner = np.repeat(np.arange(records), token_counts)
    pairs = pd.DataFrame({"owner": owner, "token": tokens}).drop_duplicates()
    holders = pairs.groupby("token", sort=False).size()
    sharers = holders.reindex(tokens).to_numpy() - 1
    width = int(token_counts.max()) if records else 0
    slot = np.arange(len(tokens)) - np.repeat(np.cumsum(token_counts) - token_counts, token_counts)
    shared = np.zeros((records, width), dtype=np.float64)
    shared[owner, slot] = sharers
    group_ids, group_of_record = np.unique(groups, return_inverse=True)
    group_size = np.bincount(group_of_record).astype(np.float64)[group_of_record]
    guesses = np.full(records, NO_GUESS, dtype=np.int64)
    knowledge_keys: dict[tuple[str, int | None], list[int]] = defaultdict(list)
    infos: dict[tuple[str, int | None], Knowledge] = {}
    for index, group in enumerate(group_ids.tolist()):
        info = knowledge(int(group))
        knowledge_keys[info.key].append(index)
        infos[info.key] = info
    for key, group_indices in knowledge_keys.items():
        info = infos[key]
        in_key = np.isin(group_of_record, np.asarray(group_indices))
        share = variants.share(info.weights)
        for length in np.unique(token_counts[in_key]).tolist():
            if length == 0:
                continue
            chosen = np.flatnonzero(in_key & (token_counts == length))
            names = np.flatnonzero((info.weights > 0) & (variants.lengths == length))
            if len(names) == 0:
                continue
            names = names[np.argsort(-info.weights[names], kind="stable")[:top_k]]
            # a cohort of a handful of people can hold a variant 100 %: keep the logs finite
            q = np.clip(share[variants.slots[names, :length]], 1e-12, 1 - 1e-9)
            log_q, log_not_q = np.log(q), np.log1p(-q)
            observation = np.column_stack([group_size[chosen], shared[chosen, :length]])
            patterns, pattern_of_record = np.unique(observation, axis=0, return_inverse=True)
            best = np.empty(len(patterns), dtype=np.int64)
            prior = np.log(info.weights[names])
            for start in range(0, len(patterns), 2048):
                block = patterns[start : start + 2048]
                others = block[:, :1] - 1
                hits = block[:, 1:]
                score = prior + hits @ log_q.T + (others - hits) @ log_not_q.T
                best[start : start + 2048] = names[np.argmax(score, axis=1)]
            guesses[chosen] = best[pattern_of_record.ravel()]
    return guesses


# --- hardening prototype: balancing ---------------------------------------------------------------------------------
def keyed_permutation(key: bytes, size: int) -> np.ndarray:
    """A permutation of ``range(size)`` that only the key holder can compute: positions sorted by their HMAC."""
    digests = b"".join(hmac.digest(key, index.to_bytes(4, "big"), "sha256")[:8] for index in range(size))
    return np.argsort(np.frombuffer(digests, dtype=">u8"), kind="stable")


def balance(packed: np.ndarray, key: bytes) -> np.ndarray:
    """Balanced filters: each filter followed by its complement, bits shuffled by a keyed permutation. Every
    filter then has exactly half its bits set (popcount no longer tells the name's length); Dice becomes
    ``1 - hamming / bits`` of the original filters."""
    bits = packed.shape[1] * 8
    permutation = keyed_permutation(key, 2 * bits)
    out = np.empty((len(packed), packed.shape[1] * 2), dtype=np.uint8)
    step = 1 << 16
    for start in range(0, len(packed), step):
        plain = np.unpackbits(packed[start : start + step], axis=1, bitorder="little")
        doubled = np.concatenate([plain, 1 - plain], axis=1)[:, permutation]
        out[start : start + step] = np.packbits(doubled, axis=1, bitorder="little")
    return out


def unbalance(packed: np.ndarray) -> tuple[np.ndarray, int]:
    """The attacker's undoing of :func:`balance`: bit columns that are exact complements of each other over the
    whole file are the two copies of one original position; keep the sparser of each pair. Returns the recovered
    filters (original positions in some order, a few flipped) and the number of pairs found."""
    count = len(packed)
    columns = bit_columns(packed)
    valid = _all_records(count)
    multipliers = np.asarray(np.random.default_rng(0x756E).integers(1, 2**63, columns.shape[1], dtype=np.uint64))
    multipliers |= np.uint64(1)
    with np.errstate(over="ignore"):
        direct = (columns * multipliers).sum(axis=1, dtype=np.uint64)
        flipped = ((~columns & valid) * multipliers).sum(axis=1, dtype=np.uint64)
    position_of = {int(code): position for position, code in enumerate(direct.tolist())}
    kept: list[int] = []
    paired = np.zeros(columns.shape[0], dtype=bool)
    for position, code in enumerate(flipped.tolist()):
        partner = position_of.get(int(code))
        if partner is None or paired[position] or partner == position:
            continue
        paired[position] = paired[partner] = True
        sparser = position if _popcount(columns[position]) <= _popcount(columns[partner]) else partner
        kept.append(sparser)
    kept_columns = columns[np.asarray(sorted(kept), dtype=np.int64)]
    width = ((len(kept) + 7) // 8) * 8
    recovered = np.zeros((count, width // 8), dtype=np.uint8)
    step = 1 << 17  # records per block, a multiple of 64
    for start in range(0, count, step):
        end = min(start + step, count)
        words = np.ascontiguousarray(kept_columns[:, start // 64 : (end + 63) // 64])
        block = np.unpackbits(words.view(np.uint8), axis=1, bitorder="little")[:, : end - start]
        padded = np.zeros((width, end - start), dtype=np.uint8)
        padded[: len(kept)] = block
        recovered[start:end] = np.packbits(padded.T, axis=1, bitorder="little")
    return recovered, len(kept)


# --- hardening prototype: diffusion --------------------------------------------------------------------------------
def diffuse(packed: np.ndarray, key: bytes, *, out_bits: int = 512, taps: int = 8) -> np.ndarray:
    """Diffused filters (after Armknecht, Heng and Schnell 2023): output bit *j* is the XOR of ``taps`` input bits
    chosen by the key. A q-gram no longer sets fixed output bits (each output bit flips with the parity of its
    taps), so bit patterns of frequent q-grams disappear; a small input difference still gives a small output
    difference (each differing input bit flips ~``out_bits * taps / bits`` output bits)."""
    bits = packed.shape[1] * 8
    seed = int.from_bytes(hmac.digest(key, b"matchkit diffusion taps", "sha256")[:16], "big")
    rng = np.random.default_rng(seed)
    chosen = np.stack([rng.choice(bits, taps, replace=False) for _ in range(out_bits)])
    out = np.empty((len(packed), out_bits // 8), dtype=np.uint8)
    step = 1 << 15
    for start in range(0, len(packed), step):
        plain = np.unpackbits(packed[start : start + step], axis=1, bitorder="little")
        mixed = np.bitwise_xor.reduce(plain[:, chosen], axis=2)
        out[start : start + step] = np.packbits(mixed, axis=1, bitorder="little")
    return out


# --- scoring --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    """How an attack did: re-identified share of all records, share guessed, precision of the guesses."""

    records: int
    guessed: int
    correct: int

    @property
    def reidentified(self) -> float:
        return self.correct / self.records if self.records else 0.0

    @property
    def guessed_share(self) -> float:
        return self.guessed / self.records if self.records else 0.0

    @property
    def precision(self) -> float:
        return self.correct / self.guessed if self.guessed else math.nan


def score(guesses: np.ndarray, truth: np.ndarray) -> Outcome:
    made = guesses >= 0
    return Outcome(records=len(truth), guessed=int(made.sum()), correct=int((guesses[made] == truth[made]).sum()))


def combine(*guesses: np.ndarray) -> np.ndarray:
    """The first attack's guess where it made one, else the next one's: what an attacker running all does."""
    out = np.full(len(guesses[0]), NO_GUESS, dtype=np.int64)
    for guess in reversed(guesses):
        out = np.where(guess >= 0, guess, out)
    return out
