#!/usr/bin/python3
"""Validates JSON instances against lanegate's JSON Schemas (config/schemas/, draft 2020-12).

Command line (run it with /usr/bin/python3, Debian's: the validator is Debian's
python3-jsonschema, which a pyenv or venv python earlier on PATH does not have):

  /usr/bin/python3 tests/support/validate_json.py SCHEMA [--jsonl] [FILE ...]
  /usr/bin/python3 tests/support/validate_json.py --check-schemas
  /usr/bin/python3 tests/support/validate_json.py --list

  SCHEMA     a schema's name: "alert", "alert.schema.json", or a path to a file in the
             schema directory. Every schema in the directory is loaded, so relative $refs
             between files (e.g. "test-alert-data.schema.json") resolve; none is fetched
             over the network.
  FILE       one JSON document per file; "-" is standard input.
  --jsonl    read each FILE as JSON lines (one instance per line; blank lines skipped).
  no FILE    standard input, read as JSON lines (one instance per line), e.g. payloads
             captured with `mosquitto_sub -t 'lanegate/v1/+/+/alerts'`.
  --schemas DIR   the schema directory (default: config/schemas next to this script's
             tests/, or $LANEGATE_SCHEMA_DIR).
  -v         also print one "FILE: ok" line per valid instance, and a count on stderr.
  --check-schemas  check every schema against the draft 2020-12 metaschema, its $schema,
             its $id (https://lanegate.org/schemas/v1/<file name>), that every $ref
             resolves, and that every property has a title and a description; exit 0 when
             all are sound, 1 with one line per problem
             (SCHEMA_FILE: JSON_PATH: REASON [metaschema|$schema|$id|$ref|documentation]).
  --list     print the schema names.

Format checking is on: "date-time" is checked as RFC 3339 (section 5.6) by this script,
because python3-jsonschema 4.10 checks it only with a package Debian does not ship.
Instances must be strict JSON: NaN/Infinity and duplicate keys are reported as errors.

Exit status: 0 every instance is valid (or the schemas are sound); 1 at least one instance
is invalid (or not JSON), one line per problem on stdout:
  FILE[:LINE]: JSON_PATH: REASON [KEYWORD]
  e.g.  alert.json: $.data.findings[0].score: 1.5 is greater than the maximum of 1 [maximum]
  (KEYWORD is the schema keyword that failed, or "json" when the text is not JSON);
2 usage error, unknown schema, unreadable file, empty input, or a broken schema (message on
stderr). Nothing is printed on success unless -v is given.

From a C++ test (the test target defines SRC as "${CMAKE_SOURCE_DIR}"): write each captured
payload to a file, or many to one file one per line, and expect exit status 0:
  /usr/bin/python3 SRC/tests/support/validate_json.py alert /tmp/x/alert-1.json
  /usr/bin/python3 SRC/tests/support/validate_json.py alert --jsonl /tmp/x/alerts.jsonl
  e.g. const int rc = std::system(("/usr/bin/python3 " SRC "/tests/support/validate_json.py"
                                   " lane-status " + path).c_str());
       EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0);  // the reasons are on stdout
To show the check can fail, validate a deliberately wrong payload and expect exit status 1.
Schema names: alert, test-alert-data, xray-hit-data, trace-hit-data, lane-status,
device-status, ack, scan-bundle, findings, spectrum, ims-analysis (see --list).
"""

import argparse
import datetime
import json
import os
import re
import sys

SCHEMA_BASE = "https://lanegate.org/schemas/v1/"
SCHEMA_SUFFIX = ".schema.json"
EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2

try:
    import jsonschema
    from jsonschema import Draft202012Validator, FormatChecker, RefResolver
    from jsonschema.exceptions import RefResolutionError, SchemaError
except ImportError:  # pragma: no cover - depends on the machine
    sys.stderr.write(
        "validate_json.py: the jsonschema module is missing: install Debian's python3-jsonschema "
        "(`make deps`) and run this script with /usr/bin/python3, not " + sys.executable + "\n")
    sys.exit(EXIT_USAGE)


class UsageError(Exception):
    """A problem with the command line, a file or a schema: exit status 2."""


# RFC 3339 section 5.6 date-time: full-date "T" full-time, with a time offset.
_DATE_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|([+-])(\d{2}):(\d{2}))$")


def is_rfc3339_date_time(value):
    """True for an RFC 3339 date-time ("2026-11-27T12:00:00.123Z", "...+02:00")."""
    if not isinstance(value, str):
        return True  # format applies to strings only; type checks the rest
    m = _DATE_TIME.match(value)
    if not m:
        return False
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    if hour > 23 or minute > 59 or second > 60:  # 60: a leap second
        return False
    if m.group(9) and (int(m.group(10)) > 23 or int(m.group(11)) > 59):
        return False
    return True


def make_format_checker():
    checker = FormatChecker()
    checker.checks("date-time")(is_rfc3339_date_time)
    return checker


def default_schema_dir():
    env = os.environ.get("LANEGATE_SCHEMA_DIR")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.normpath(os.path.join(here, "..", "..", "config", "schemas"))


def _no_network(uri):
    raise RefResolutionError(
        "$ref %s is not one of the schemas in the schema directory (nothing is fetched)" % uri)


class SchemaSet:
    """Every *.schema.json of a directory, keyed by file name and by $id."""

    def __init__(self, directory):
        self.directory = directory
        self.by_name = {}
        if not os.path.isdir(directory):
            raise UsageError("schema directory %s does not exist" % directory)
        for entry in sorted(os.listdir(directory)):
            if not entry.endswith(SCHEMA_SUFFIX):
                continue
            path = os.path.join(directory, entry)
            try:
                with open(path, encoding="utf-8") as f:
                    schema = json.load(f, object_pairs_hook=_reject_duplicates)
            except (OSError, ValueError) as e:
                raise UsageError("%s: cannot load schema: %s" % (path, e))
            if not isinstance(schema, dict):
                raise UsageError("%s: a schema must be a JSON object" % path)
            self.by_name[entry] = schema
        if not self.by_name:
            raise UsageError("no *%s files in %s" % (SCHEMA_SUFFIX, directory))
        self.store = {}
        for name, schema in self.by_name.items():
            sid = schema.get("$id", SCHEMA_BASE + name)
            self.store[sid] = schema

    def names(self):
        return [n[: -len(SCHEMA_SUFFIX)] for n in self.by_name]

    def lookup(self, name):
        """The file name of a schema given as "alert", "alert.schema.json" or a path."""
        base = os.path.basename(name)
        if not base.endswith(SCHEMA_SUFFIX):
            base += SCHEMA_SUFFIX
        if base not in self.by_name:
            raise UsageError("unknown schema '%s'; known: %s" % (name, ", ".join(self.names())))
        if os.sep in name and os.path.abspath(name) != os.path.abspath(
                os.path.join(self.directory, base)):
            raise UsageError("schema %s is not in the schema directory %s (use --schemas)"
                             % (name, self.directory))
        return base

    def validator(self, file_name):
        schema = self.by_name[file_name]
        resolver = RefResolver.from_schema(
            schema, store=dict(self.store), handlers={"http": _no_network, "https": _no_network})
        return Draft202012Validator(schema, resolver=resolver, format_checker=make_format_checker())

    def check(self):
        """Problems with the schemas themselves: metaschema, $schema, $id, unresolvable $refs."""
        problems = []
        for name, schema in self.by_name.items():
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as e:
                problems.append("%s: %s: not a valid draft 2020-12 schema: %s [metaschema]"
                                % (name, json_path(e.absolute_path), e.message))
                continue
            if schema.get("$schema") != "https://json-schema.org/draft/2020-12/schema":
                problems.append("%s: $.$schema: must be https://json-schema.org/draft/2020-12/schema "
                                "[$schema]" % name)
            if schema.get("$id") != SCHEMA_BASE + name:
                problems.append("%s: $.$id: must be %s%s, is %r [$id]"
                                % (name, SCHEMA_BASE, name, schema.get("$id")))
            resolver = self.validator(name).resolver
            # The titles and descriptions are the control room's documentation: every
            # property says what it is, itself or through the definition it refers to.
            for where, prop in _properties(schema, "$"):
                target = prop
                if "$ref" in prop and not ("title" in prop and "description" in prop):
                    try:
                        target = dict(resolver.resolve(prop["$ref"])[1], **prop)
                    except (RefResolutionError, LookupError, ValueError):
                        continue  # reported below
                missing = [k for k in ("title", "description") if not target.get(k)]
                if missing:
                    problems.append("%s: %s: property without %s [documentation]"
                                    % (name, where, " and ".join(missing)))
            for where, ref in _refs(schema, "$"):
                try:
                    resolver.resolve(ref)  # relative to the schema's $id, its base URI
                except (RefResolutionError, LookupError, ValueError) as e:
                    problems.append("%s: %s: $ref %r does not resolve: %s [$ref]" % (name, where, ref, e))
        return problems


def _refs(node, where):
    """Every $ref in a schema with its location. Relative refs are relative to the root $id
    (no schema here sets $id below its root)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield where, value
            else:
                yield from _refs(value, where + "." + key)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _refs(value, "%s[%d]" % (where, i))


def _properties(node, where):
    """Every property subschema (under "properties") with its location, except in the
    conditions of if/then (they only select a branch)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("if", "not"):
                continue
            if key == "properties" and isinstance(value, dict):
                for prop, sub in value.items():
                    if isinstance(sub, dict):
                        yield where + ".properties." + prop, sub
            if isinstance(value, (dict, list)):
                yield from _properties(value, where + "." + key)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _properties(value, "%s[%d]" % (where, i))


def _reject_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError("duplicate key %r" % key)
        seen[key] = value
    return seen


def _reject_constant(name):
    raise ValueError("%s is not JSON" % name)


def parse_json(text):
    """Strict JSON: no NaN/Infinity, no duplicate keys. Raises ValueError."""
    return json.loads(text, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def json_path(path):
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += "[%d]" % part
        elif _IDENT.match(part):
            out += "." + part
        else:
            out += "[" + json.dumps(part) + "]"
    return out


def _leaf_errors(error):
    """For oneOf/anyOf failures, the errors of the branch that came closest."""
    if error.context:
        best = jsonschema.exceptions.best_match(error.context)
        if best is not None and best is not error:
            return _leaf_errors(best)
    return [error]


def instance_errors(validator, instance):
    """(json path, reason, keyword) of every problem, ordered by path, deduplicated."""
    out = []
    for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path))):
        for leaf in _leaf_errors(error):
            item = (json_path(leaf.absolute_path), leaf.message, str(leaf.validator))
            if item not in out:
                out.append(item)
    return out


def _instances(files, jsonl):
    """Yields (label, text); label is FILE, FILE:LINE or <stdin>:LINE."""
    if not files:
        files, jsonl = ["-"], True
    for name in files:
        if name == "-":
            label, text = "<stdin>", sys.stdin.read()
        else:
            try:
                with open(name, encoding="utf-8") as f:
                    text = f.read()
            except (OSError, UnicodeDecodeError) as e:
                raise UsageError("cannot read %s: %s" % (name, e))
            label = name
        if jsonl:
            for number, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    yield "%s:%d" % (label, number), line
        else:
            yield label, text


def main(argv):
    parser = argparse.ArgumentParser(
        prog="validate_json.py",
        description="Validate JSON instances against a lanegate JSON Schema (config/schemas).",
        epilog="exit status: 0 all valid, 1 some instance invalid, 2 usage or schema error")
    parser.add_argument("schema", nargs="?", help="schema name, e.g. alert or alert.schema.json")
    parser.add_argument("files", nargs="*", help="instance files ('-' = stdin); none: JSON lines on stdin")
    parser.add_argument("--jsonl", action="store_true", help="read each FILE as JSON lines")
    parser.add_argument("--schemas", default=default_schema_dir(), help="schema directory")
    parser.add_argument("--check-schemas", action="store_true",
                        help="check every schema (metaschema, $id, $refs) and exit")
    parser.add_argument("--list", action="store_true", help="list the schema names and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="print a line per valid instance")
    try:
        args = parser.parse_intermixed_args(argv)
    except SystemExit as e:  # argparse exits 2 on usage errors and 0 on --help
        return e.code if isinstance(e.code, int) else EXIT_USAGE

    try:
        schemas = SchemaSet(args.schemas)
        if args.list:
            print("\n".join(schemas.names()))
            return EXIT_OK
        if args.check_schemas:
            if args.schema or args.files:
                raise UsageError("--check-schemas takes no SCHEMA or FILE")
            problems = schemas.check()
            for p in problems:
                print(p)
            if args.verbose and not problems:
                print("%d schemas are valid draft 2020-12, every $ref resolves, every property is documented" % len(schemas.by_name))
            return EXIT_INVALID if problems else EXIT_OK
        if not args.schema:
            raise UsageError("no SCHEMA given (known: %s)" % ", ".join(schemas.names()))
        name = schemas.lookup(args.schema)
        problems = schemas.check()
        if problems:
            raise UsageError("the schemas are broken:\n  " + "\n  ".join(problems))
        validator = schemas.validator(name)

        invalid = valid = 0
        for label, text in _instances(args.files, args.jsonl):
            try:
                instance = parse_json(text)
            except ValueError as e:
                print("%s: $: not valid JSON: %s [json]" % (label, e))
                invalid += 1
                continue
            try:
                errors = instance_errors(validator, instance)
            except RefResolutionError as e:
                raise UsageError("%s: %s" % (name, e))
            if errors:
                invalid += 1
                for path, reason, keyword in errors:
                    print("%s: %s: %s [%s]" % (label, path, reason, keyword))
            else:
                valid += 1
                if args.verbose:
                    print("%s: ok" % label)
        if valid + invalid == 0:
            raise UsageError("no instance to validate (empty input)")
        if args.verbose:
            sys.stderr.write("%d valid, %d invalid against %s\n" % (valid, invalid, name))
        return EXIT_INVALID if invalid else EXIT_OK
    except UsageError as e:
        sys.stderr.write("validate_json.py: %s\n" % e)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
