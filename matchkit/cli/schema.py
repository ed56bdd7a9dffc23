"""`matchkit schema list|show|check`: find the built-in schemas that ship inside the package, print one (to copy
as the template of your own), or check a schema file of your own."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "schema", help="list, print or check source and linkage schemas",
        description="The built-in schemas ship inside the package (matchkit/data/schemas/, or the folder named "
        "by MATCHKIT_CONFIG_DIR). List them, print one to start a schema of your own from it "
        "('matchkit schema show febrl > mine.toml'), or check a schema file before hashing with it.")
    actions = parser.add_subparsers(dest="schema_command", metavar="ACTION")
    listing = actions.add_parser("list", help="the built-in schemas and where they are read from",
                                 description="List the built-in schemas (source and linkage) and their files.")
    listing.set_defaults(func=run_list)
    show = actions.add_parser("show", help="print a built-in schema's TOML",
                              description="Print a built-in schema's TOML exactly as 'matchkit hash NAME' reads "
                              "it, e.g. to copy it as the template of your own schema.")
    show.add_argument("name", metavar="NAME", help="a built-in schema name (see 'matchkit schema list')")
    show.set_defaults(func=run_show)
    check = actions.add_parser("check", help="validate a schema (.toml file or built-in name); every fault at once",
                               description="Load and validate a schema; print a summary, or every fault with its "
                               "path (exit 1).")
    check.add_argument("schema", metavar="SCHEMA", help="a schema .toml file or a built-in name")
    check.set_defaults(func=run_check)
    parser.set_defaults(func=lambda args: (parser.print_help(sys.stderr), 2)[1])


def run_list(args: argparse.Namespace) -> int:
    from matchkit.errors import SchemaError
    from matchkit.resources import schema_file
    from matchkit.schema import BUILTIN_LINK_SCHEMAS, BUILTIN_SOURCES, load_schema

    faults = 0
    for name in BUILTIN_SOURCES + BUILTIN_LINK_SCHEMAS:
        try:
            schema = load_schema(name)
        except SchemaError as exc:  # e.g. a MATCHKIT_CONFIG_DIR without this file: say so, list the others
            faults += 1
            print(f"{name:<18} {'-':<7} {schema_file(name)}  (unusable: {exc.problems[0]})")
            continue
        print(f"{name:<18} {schema.kind:<7} {schema.path}")
    return 1 if faults else 0


def run_show(args: argparse.Namespace) -> int:
    from matchkit.schema import builtin_schema

    _, raw = builtin_schema(args.name)
    sys.stdout.buffer.write(raw)
    sys.stdout.flush()
    return 0


def run_check(args: argparse.Namespace) -> int:
    from matchkit.schema import load_schema

    schema = load_schema(args.schema)
    print(f"{schema.path}: valid {schema.kind} schema '{schema.name}' version {schema.version}, "
          f"{len(schema.columns)} columns")
    return 0
