"""`matchkit reasons [--lang zh|en] [CODE ...]`: the reason catalogue, as tax staff read it in reports and workbooks."""

from __future__ import annotations

import argparse

from matchkit.report.catalogue import DEFAULT_LANGUAGE, LANGUAGES


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reasons", help="explain the reason codes of the flags (Chinese by default, --lang en)",
        description="Print every reason code with what the evidence showed, the rule, its policy source and the "
        "suggested check, grouped by what the reviewer must do. Texts come from the reason catalogue "
        "(matchkit/data/reasons.toml).",
    )
    parser.add_argument("codes", nargs="*", metavar="CODE", help="only these codes (default: all)")
    parser.add_argument("--lang", choices=LANGUAGES, default=DEFAULT_LANGUAGE, help="zh (default) or en")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from matchkit.errors import MatchkitError
    from matchkit.report.catalogue import load_catalogue

    catalogue = load_catalogue()
    lang = args.lang
    wanted = [code.strip().upper() for code in args.codes]
    unknown = [code for code in wanted if code not in catalogue.reasons]
    if unknown:
        raise MatchkitError(f"unknown reason code(s): {', '.join(unknown)} (run 'matchkit reasons' for the list)")
    label = lambda key: catalogue.label(key, lang)
    lines: list[str] = []
    for group in catalogue.group_order():
        codes = [code for code, entry in catalogue.reasons.items()
                 if entry.attrs["group"] == group and (not wanted or code in wanted)]
        if not codes:
            continue
        lines.append(f"== {catalogue.groups[group].text(lang)}")
        lines.append(f"   {catalogue.groups[group].text(lang, 'action')}")
        lines.append("")
        for code in codes:
            lines.append(f"{code}  {catalogue.reason(code, lang)}")
            for key, text in (("evidence", catalogue.reason(code, lang, "evidence")),
                              ("rule", catalogue.reason(code, lang, "rule")),
                              ("basis", catalogue.basis(code)),
                              ("check", catalogue.reason(code, lang, "check"))):
                lines.append(f"   {label('col.' + key)}{label('colon')}{text}")
            lines.append("")
    if not wanted:
        lines.append(f"== {label('statuses')}")
        for status, entry in catalogue.statuses.items():
            lines.append(f"{status:<13} {entry.text(lang)}{label('colon')}{entry.text(lang, 'meaning')}")
    print("\n".join(lines).rstrip())
    return 0
