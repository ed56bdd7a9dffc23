"""On-demand checks for a determined list with no shared secret (SPEC §7, 按需提供).

Five steps, each a library call here and a thin command in ``matchkit.cli.keyless``:

1. ``seal`` (agency): every row of its extract encrypted under a random row key; for every piece of identifying
   evidence of every person in the row a lookup tag and the wrapped row key, both derived from the RFC 9497 OPRF
   of that evidence under the agency's own key (:mod:`matchkit.keyless.sealed`). Full, delta or merged.
2. ``request`` (tax bureau): blinded OPRF inputs of every token its claims need (:mod:`matchkit.keyless.request`).
3. ``answer`` (agency): evaluates the blinded elements under its key for the request's purpose and tax year
   (:mod:`matchkit.keyless.answer`).
4. ``open`` (tax bureau): unblinds, finds the tags of its list, decrypts exactly those rows and writes hashed files
   in a token space local to the request, which ``verify`` reads unchanged (:mod:`matchkit.keyless.opener`).

Which combinations of tokens are identifying evidence is decided in :mod:`matchkit.keyless.evidence`.
"""
