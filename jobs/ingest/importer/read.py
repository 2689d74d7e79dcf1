"""Reading a transactions file with DuckDB (read_csv with explicit columns and
store_rejects; whitespace files one line per value, split in SQL; Parquet through pyarrow) and
validating every value in SQL, so that the first bad one is named with its line and column."""

from __future__ import annotations

import csv
import functools
import gzip
import io
import os
import re
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from jobs.ingest.importer.options import WHITESPACE, SourceFile, TransactionFileError

_INT32_MAX = 2**31 - 1
_NUMBER = r"^[+-]?(\d+(\.\d*)?|\.\d+)$"
_AT_MOST_TWO_DECIMALS = r"^[+-]?\d*(\.\d{0,2}0*)?$"
_AT_MOST_12_INTEGER_DIGITS = r"^[+-]?0*\d{0,12}(\.|$)"
_INTEGER = r"^[+-]?\d+$"
_NO_DELIMITER = "\x1f"  # whitespace files are read one line per value, then split in SQL
_SAMPLE_TIME = datetime(2024, 1, 31, 13, 45, 0)
_INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
_FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")
# Unicode White_Space, as trimmed before (Arrow's utf8_trim_whitespace). trim() alone removes
# spaces only and trim() with a character list is slow: it runs only on columns where some value
# may need it (see Staging._needs_trim), and there only where a regex sees edge whitespace.
_WHITESPACE_CODES = (
    *range(9, 14), 32, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F, 0x205F, 0x3000
)
_WHITESPACE_CHARS_SQL = "(" + " || ".join(f"chr({c})" for c in _WHITESPACE_CODES) + ")"
_EDGE_WHITESPACE = r"^[\s\x0b\x{85}\pZ]|[\s\x0b\x{85}\pZ]$"
# ISO values without a zone: cast to TIMESTAMP directly (the zone-aware cast is several times
# slower; TIMESTAMP alone would ignore an offset instead of converting it).
_NAIVE_ISO = r"^\d{4}-\d{1,2}-\d{1,2}([T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?)?$"
# One regex for the three amount rules' happy path: the rules run only when it fails somewhere.
_PLAIN_AMOUNT = r"^[+-]?0*\d{0,12}(\.\d{0,2}0*)?$"



@dataclass
class RawTable:
    """The temp table or view `raw` on `con`: `_key` plus one column per role found in the file.

    `_key` orders the rows as in the file: the data row (0-based) or, for whitespace files, the
    physical line (numbering data rows would cost a window over the whole file).
    """

    con: duckdb.DuckDBPyConnection
    source: SourceFile
    header: bool
    rows: int
    types: dict[str, str]  # role -> DuckDB type of its raw column
    trimmed: bool = False  # text values carry no surrounding whitespace (split on it)

    def close(self) -> None:
        """Drop the connection (its temp tables go with it) and any transcoded copy of the file."""
        self.con.close()
        if self.source.read_path is not None and self.source.read_path != self.source.path:
            self.source.read_path.unlink(missing_ok=True)


_DATABASE_LOCK = threading.Lock()


@functools.cache
def _database(pid: int) -> duckdb.DuckDBPyConnection:
    """The importer's private in-memory DuckDB, one per process (`pid`: never shared across a fork)."""
    del pid
    return duckdb.connect(":memory:")


def _connect() -> duckdb.DuckDBPyConnection:
    """A new connection with its own temp tables. Opening a database costs about 20 ms, a cursor
    on an open one almost nothing."""
    with _DATABASE_LOCK:  # a connection is not safe to share between threads, even for cursor()
        con = _database(os.getpid()).cursor()
    # Zoned values become naive UTC when cast to TIMESTAMP only when the session zone is UTC.
    con.execute("SET TimeZone = 'UTC'")
    return con


def _first(
    con: duckdb.DuckDBPyConnection, sql: str, params: dict[str, Any] | None = None
) -> tuple[Any, ...] | None:
    """The first row of a query, or None. Fetches to the end: DuckDB refuses other work on a
    connection while a result is unfinished."""
    rows = con.execute(sql, params).fetchall()
    return tuple(rows[0]) if rows else None


def _finish(raw: RawTable) -> RawTable:
    """Fill in the row count and the column types of the raw table just created."""
    described = raw.con.execute("DESCRIBE raw").fetchall()
    raw.types = {str(r[0]): str(r[1]) for r in described if not str(r[0]).startswith("_")}
    count = _first(raw.con, "SELECT count(*) FROM raw")
    raw.rows = int(count[0]) if count else 0
    return raw


# --------------------------------------------------------------------------------------------
# Small text helpers (the first line only: header detection and delimiter hints)
# --------------------------------------------------------------------------------------------
def _open_binary(path: Path) -> io.BufferedIOBase:
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    return path.open("rb")


def _python_encoding(encoding: str) -> str:
    return "utf-8-sig" if encoding.lower().replace("-", "") in ("utf8", "utf8sig") else encoding


def _duckdb_encoding(encoding: str) -> str | None:
    """DuckDB's name for an encoding it reads built in (utf-8, utf-16, latin-1), else None."""
    key = encoding.lower().replace("-", "").replace("_", "")
    names = {
        "utf8": "utf-8", "utf8sig": "utf-8", "utf16": "utf-16", "latin1": "latin-1", "iso88591": "latin-1"
    }
    return names.get(key)


def _readable_by_duckdb(source: SourceFile) -> None:
    """Set what DuckDB reads: the file, or a UTF-8 copy when DuckDB lacks its encoding (cp1252...).

    The copy keeps every line where it was, so line numbers stay those of the file.
    """
    known = _duckdb_encoding(source.encoding)
    if known is not None:
        source.read_path, source.read_encoding = source.path, known
        return
    with _open_binary(source.path) as f:
        data = f.read()
    try:
        text = data.decode(source.encoding)
    except LookupError:
        raise TransactionFileError(f"--encoding {source.encoding!r}: unknown encoding") from None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise TransactionFileError(
            f"{source.path.name} line {line}: not valid {source.encoding} text; use --encoding"
        ) from None
    with tempfile.NamedTemporaryFile("wb", suffix=".csv", prefix="import-", delete=False) as out:
        out.write(text.encode("utf-8"))
    source.read_path, source.read_encoding = Path(out.name), "utf-8"


def _split_line(text: str, delimiter: str) -> list[str]:
    if delimiter == WHITESPACE:
        return text.split()
    return next(csv.reader([text], delimiter=delimiter), [""])


def _describe_delimiter(delimiter: str) -> str:
    if delimiter == WHITESPACE:
        return "runs of whitespace (--delimiter whitespace)"
    if delimiter == "\t":
        return "tab ('\\t')"
    return repr(delimiter)


def _delimiter_option(delimiter: str) -> str:
    return {"\t": "'\\t'", WHITESPACE: WHITESPACE}.get(delimiter, repr(delimiter))


def _detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        if fmt not in ("csv", "parquet"):
            raise TransactionFileError(f"unknown format {fmt!r}: use csv or parquet")
        return fmt
    return "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"


def _default_delimiter(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    return "\t" if ".tsv" in suffixes or ".tab" in suffixes else ","


def _resolve_roles(
    names: Sequence[str], wanted: dict[str, str | None], defaults: dict[str, str]
) -> dict[str, str]:
    """Role -> the file's column name. Exact match first, then case-insensitive."""
    lower: dict[str, list[str]] = {}
    for n in names:
        lower.setdefault(n.lower(), []).append(n)
    resolved: dict[str, str] = {}
    for role, configured in wanted.items():
        name = configured if configured is not None else defaults.get(role)
        if name is None:
            continue
        if name in names:
            if list(names).count(name) > 1:
                raise TransactionFileError(
                    f"column {name!r} appears more than once in the file's columns: {', '.join(names)}"
                )
            resolved[role] = name
        elif len(lower.get(name.lower(), [])) == 1:
            resolved[role] = lower[name.lower()][0]
    return resolved


def _missing_roles_error(
    source: SourceFile,
    names: Sequence[str],
    missing: Sequence[str],
    wanted: dict[str, str | None],
    defaults: dict[str, str],
    first_line: str | None,
    needed: int,
    role_options: dict[str, str],
) -> TransactionFileError:
    what = ", ".join(repr(wanted.get(r) or defaults.get(r, r)) for r in missing)
    if first_line is not None and len(names) < needed:
        hint = _suggest_delimiter(first_line, source.delimiter, needed)
        return TransactionFileError(
            f"{source.path.name} line 1: found {len(names)} column(s) using delimiter "
            f"{_describe_delimiter(source.delimiter)} but at least {needed} are needed "
            f"(missing {what}); the line reads {first_line!r}.{hint}"
        )
    options = ", ".join(f"{role_options[r]} NAME" for r in missing if r in role_options)
    how = f" Name the column(s) with {options}, or name all columns with --columns." if options else ""
    return TransactionFileError(
        f"{source.path.name}: missing required column(s) {what}; found columns: "
        f"{', '.join(names) if names else '(none)'}.{how}"
    )


def _suggest_delimiter(line: str, tried: str, needed: int) -> str:
    best: tuple[int, str] | None = None
    for candidate in (",", ";", "\t", "|", WHITESPACE):
        if candidate == tried:
            continue
        width = len(_split_line(line, candidate))
        if width >= needed and (best is None or width > best[0]):
            best = (width, candidate)
    if best is None:
        return " Is the delimiter right? (--delimiter ',', ';', '\\t', '|' or whitespace)"
    return (
        f" Is the delimiter right? {_describe_delimiter(best[1])} splits it into {best[0]} columns: "
        f"try --delimiter {_delimiter_option(best[1])}"
    )


def _read_first_line(path: Path, encoding: str) -> str:
    with _open_binary(path) as f:
        raw = f.readline(1 << 20)
    try:
        return raw.decode(_python_encoding(encoding)).rstrip("\r\n")
    except LookupError:
        raise TransactionFileError(f"--encoding {encoding!r}: unknown encoding") from None
    except UnicodeDecodeError as exc:
        raise TransactionFileError(
            f"{path.name} line 1: not valid {encoding} text ({exc}); use --encoding"
        ) from None


# --------------------------------------------------------------------------------------------
# CSV through DuckDB
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Wanted:
    """Which roles to look for in a file's columns, and how to name them in errors."""

    roles: dict[str, str | None]  # role -> configured column name (None: the default if present)
    required: Sequence[str]
    defaults: dict[str, str]
    role_options: dict[str, str] = field(default_factory=dict)  # role -> CLI option naming it
    header_probe_role: str | None = None  # with --columns: line 1 is a header when this is no number

    def needed(self) -> list[str]:
        """Roles that must be found: the required ones and those named by an option."""
        return [r for r in self.roles if r in self.required or self.roles[r] is not None]


def _read_csv(
    path: Path,
    delimiter: str,
    header: bool | None,
    columns: tuple[str, ...] | None,
    wanted: Wanted,
    encoding: str,
) -> RawTable:
    source = SourceFile(path=path, kind="csv", delimiter=delimiter, encoding=encoding)
    first_line = _read_first_line(path, encoding)
    if not first_line.strip():
        raise TransactionFileError(
            f"{path.name} line 1 is empty: the file must start with its header or its first transaction"
        )
    first_fields = [f.strip() for f in _split_line(first_line, delimiter)]

    if columns is not None:
        names = list(columns)
        if len(set(names)) != len(names):
            raise TransactionFileError(f"--columns names a column more than once: {', '.join(names)}")
        if len(first_fields) != len(names):
            hint = (
                _suggest_delimiter(first_line, delimiter, len(names))
                if len(first_fields) < len(names)
                else ""
            )
            raise TransactionFileError(
                f"{path.name} line 1: found {len(first_fields)} column(s) using delimiter "
                f"{_describe_delimiter(delimiter)} but --columns names {len(names)} "
                f"({', '.join(names)}); the line reads {first_line!r}.{hint}"
            )
        if header is None:
            probe_role = wanted.header_probe_role
            probe = (
                _resolve_roles(names, {probe_role: wanted.roles.get(probe_role)}, wanted.defaults)
                if probe_role
                else {}
            )
            probe_name = probe.get(probe_role or "")
            header = probe_name is not None and not re.match(_NUMBER, first_fields[names.index(probe_name)])
    else:
        if header is False:
            raise TransactionFileError("a file without a header needs --columns to name its columns")
        header = True
        names = first_fields

    source.header_lines = 1 if header else 0
    roles = _resolve_roles(names, wanted.roles, wanted.defaults)
    missing = [r for r in wanted.needed() if r not in roles]
    if missing:
        needed = len(wanted.needed())
        raise _missing_roles_error(
            source,
            names,
            missing,
            wanted.roles,
            wanted.defaults,
            first_line if header else None,
            needed,
            wanted.role_options,
        )
    source.role_to_source = roles

    _readable_by_duckdb(source)
    raw = RawTable(_connect(), source, bool(header), 0, {}, trimmed=delimiter == WHITESPACE)
    try:
        if delimiter == WHITESPACE:
            _read_whitespace_columns(raw.con, source, names, roles)
        else:
            _read_delimited_columns(raw.con, source, names, roles)
        return _finish(raw)
    except BaseException:
        raw.close()
        raise


def _lines_sql(source: SourceFile) -> tuple[str, dict[str, Any]]:
    """read_csv of a file as one VARCHAR per physical line (an empty line is one NULL value)."""
    sql = (
        "read_csv($path, columns = {'line': 'VARCHAR'}, delim = $nodelim, quote = '', escape = '', "
        "header = false, auto_detect = false, encoding = $encoding)"
    )
    return sql, {"path": str(source.read_path), "nodelim": _NO_DELIMITER, "encoding": source.read_encoding}


def _read_delimited_columns(
    con: duckdb.DuckDBPyConnection, source: SourceFile, names: list[str], roles: dict[str, str]
) -> None:
    """The role columns of a delimited file, as text, read by DuckDB's read_csv into `raw`.

    Malformed lines (too few or too many fields, bad quoting or encoding) land in the rejects
    table with their physical line; the first one is the error.
    """
    # Unique internal names: the file's own names may repeat or clash with role names or SQL.
    internal = [f"c{i}" for i in range(len(names))]
    spec = ", ".join(f"'{c}': 'VARCHAR'" for c in internal)
    picked = ", ".join(f'{internal[names.index(col)]} AS "{role}"' for role, col in roles.items())
    try:
        con.execute(
            f"CREATE TEMP TABLE raw_csv AS SELECT {picked} FROM read_csv($path, columns = {{{spec}}}, "
            "delim = $delim, quote = '\"', escape = '\"', header = false, skip = $skip, "
            "auto_detect = false, encoding = $encoding, "
            "store_rejects = true, rejects_table = 'rejects', rejects_scan = 'rejects_scan')",
            {
                "path": str(source.read_path),
                "delim": source.delimiter,
                "skip": source.header_lines,
                "encoding": source.read_encoding,
            },
        )
    except duckdb.Error as exc:
        raise TransactionFileError(f"{source.path.name}: cannot read as CSV: {_one_line(exc)}") from None
    rejected = _first(
        con,
        "SELECT line, CAST(error_type AS VARCHAR), csv_line, error_message FROM rejects ORDER BY line LIMIT 1",
    )
    if rejected is not None:
        raise _rejected_line_error(source, len(names), *rejected)
    con.execute("CREATE TEMP VIEW raw AS SELECT rowid AS _key, * FROM raw_csv")

    def locate(row: int) -> int:
        # The (row+1)-th non-empty line after the header, as DuckDB skips empty lines too.
        lines, params = _lines_sql(source)
        con.execute(f"CREATE TEMP TABLE IF NOT EXISTS lines AS SELECT line FROM {lines}", params)
        # rowid is the insertion order of `lines`, i.e. the physical line number minus one.
        found = _first(
            con,
            "SELECT rowid + 1 FROM lines WHERE rowid >= $skip AND line IS NOT NULL "
            "ORDER BY rowid LIMIT 1 OFFSET $row",
            {"skip": source.header_lines, "row": row},
        )
        return int(found[0]) if found else row + 1 + source.header_lines

    source.locate = locate


def _rejected_line_error(
    source: SourceFile, expected: int, line: int, error_type: str, text: str | None, message: str | None
) -> TransactionFileError:
    """The error for the first line in DuckDB's rejects table, worded as for any other line."""
    where = f"{source.path.name} line {line}"
    shown = (text or "").strip("\r\n")
    if error_type in ("MISSING COLUMNS", "TOO MANY COLUMNS"):
        found = re.search(r"Found: (\d+)", message or "")
        actual = int(found.group(1)) if found else len(_split_line(shown, source.delimiter))
        return TransactionFileError(
            f"{where}: expected {expected} columns separated by {_describe_delimiter(source.delimiter)} "
            f"but found {actual}; the line reads {shown!r}"
        )
    if error_type == "INVALID ENCODING":
        return TransactionFileError(f"{where}: not valid {source.encoding} text; use --encoding")
    return TransactionFileError(
        f"{where}: cannot read as CSV ({error_type.lower()}: {_one_line(message or '')}); "
        f"the line reads {shown!r}"
    )


def _one_line(text: object) -> str:
    """DuckDB's multi-line messages on one line (the CLI prints errors as one line)."""
    return " ".join(str(text).split())


def _read_whitespace_columns(
    con: duckdb.DuckDBPyConnection, source: SourceFile, names: list[str], roles: dict[str, str]
) -> None:
    """The role columns of a file whose fields are separated by runs of whitespace (CDNOW).

    DuckDB reads each line as one value (numbered by its physical line); one regular expression
    with a group per column splits it (faster than a split into lists) and matches only lines
    with exactly that many fields. Blank lines are skipped, as in the line numbering of errors.
    """
    internal = [f"c{i}" for i in range(len(names))]
    # A constant, not a parameter: DuckDB compiles a constant pattern once.
    pattern = r"^\s*" + r"\s+".join([r"(\S+)"] * len(names)) + r"\s*$"
    lines, params = _lines_sql(source)
    try:
        con.execute(f"CREATE TEMP TABLE lines AS SELECT line FROM {lines}", params)
        # rowid is the insertion order of `lines`, i.e. the physical line number minus one.
        con.execute(
            "CREATE TEMP TABLE fields AS SELECT rowid + 1 AS _key, "
            f"regexp_extract(line, {_lit(pattern)}, [{', '.join(_lit(c) for c in internal)}]) AS f FROM lines "
            r"WHERE rowid >= $skip AND regexp_matches(line, '\S')",
            {"skip": source.header_lines},
        )
    except duckdb.Error as exc:
        raise TransactionFileError(f"{source.path.name}: cannot read as text: {_one_line(exc)}") from None
    # No match leaves every group empty, and a field is never empty.
    bad = _first(con, "SELECT _key FROM fields WHERE f.c0 = '' ORDER BY _key LIMIT 1")
    if bad is not None:
        line = _first(con, "SELECT line FROM lines WHERE rowid = $row", {"row": int(bad[0]) - 1})
        found = (line[0] if line else "").split()
        raise TransactionFileError(
            f"{source.path.name} line {bad[0]}: expected {len(names)} columns separated by "
            f"{_describe_delimiter(WHITESPACE)} but found {len(found)}; the line reads {' '.join(found)!r}"
        )
    picked = ", ".join(f'f.{internal[names.index(col)]} AS "{role}"' for role, col in roles.items())
    con.execute(f"CREATE TEMP VIEW raw AS SELECT _key, {picked} FROM fields")

    def locate(row: int) -> int:
        found = _first(con, "SELECT _key FROM fields ORDER BY _key LIMIT 1 OFFSET $row", {"row": row})
        return int(found[0]) if found else row + 1 + source.header_lines

    source.locate = locate
    source.key_is_line = True


# --------------------------------------------------------------------------------------------
# Parquet through pyarrow
# --------------------------------------------------------------------------------------------
def _read_parquet(path: Path, columns: tuple[str, ...] | None, wanted: Wanted) -> RawTable:
    source = SourceFile(path=path, kind="parquet")
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise TransactionFileError(f"{path.name}: cannot read as Parquet: {exc}") from None
    names = list(schema.names)
    file_names = names
    if columns is not None:
        if len(columns) != len(names):
            raise TransactionFileError(
                f"{path.name}: --columns names {len(columns)} columns but the Parquet file has "
                f"{len(names)}: {', '.join(names)}"
            )
        names = list(columns)
    roles = _resolve_roles(names, wanted.roles, wanted.defaults)
    missing = [r for r in wanted.needed() if r not in roles]
    if missing:
        raise _missing_roles_error(
            source, names, missing, wanted.roles, wanted.defaults, None, 0, wanted.role_options
        )
    source.role_to_source = roles
    picked = {role: file_names[names.index(col)] for role, col in roles.items()}
    table = pq.read_table(path, columns=list(dict.fromkeys(picked.values())))
    arrays = {"_key": pa.array(np.arange(table.num_rows, dtype=np.int64))}
    arrays.update({role: table.column(col) for role, col in picked.items()})
    con = _connect()
    con.register("raw_arrow", pa.table(arrays))
    con.execute("CREATE TEMP TABLE raw AS SELECT * FROM raw_arrow")
    con.unregister("raw_arrow")
    return _finish(RawTable(con, source, header=False, rows=0, types={}))


def read_tabular(
    path: Path,
    *,
    fmt: str,
    delimiter: str | None,
    header: bool | None,
    columns: tuple[str, ...] | None,
    encoding: str,
    wanted: Wanted,
) -> RawTable:
    """Read a CSV or Parquet file into the raw table of a new DuckDB connection."""
    if not path.is_file():
        raise TransactionFileError(f"file not found: {path}")
    if _detect_format(path, fmt) == "parquet":
        return _read_parquet(path, columns, wanted)
    return _read_csv(path, delimiter or _default_delimiter(path), header, columns, wanted, encoding)


# --------------------------------------------------------------------------------------------
# Typing and validation in SQL: vectorised; the first broken rule is reported with its line
# --------------------------------------------------------------------------------------------
def _date_hint(date_format: str | None) -> str:
    if date_format is None:
        return "expected an ISO 8601 date or date-time like 2024-01-31 or 2024-01-31 13:45:00 (use --date-format for others)"
    return f"expected format {date_format} (e.g. {_SAMPLE_TIME.strftime(date_format)})"


def _lit(pattern: str) -> str:
    """A constant of this module (a regex) as a SQL string literal."""
    return "'" + pattern.replace("'", "''") + "'"


def _quoted(problem: str) -> Callable[[Any], str]:
    """A message: the value in quotes, then what is wrong with it."""
    return lambda value: f"{value!r} {problem}"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class _Rule:
    role: str
    bad: str  # SQL predicate over the staged columns: true on a row that breaks the rule
    shown: str  # SQL expression for the value the message shows
    problem: Callable[[Any], str]  # shown value -> what is wrong
    guard: str | None = None  # a cheaper predicate, true wherever this rule (or its group's) is


@dataclass
class Staging:
    """Typed columns of one raw table, computed in SQL, and the rules their rows must pass.

    `texts` are computed from `raw` (trimmed text, NULL when empty); `values` from the texts
    (with `try_cast`/`try_strptime`, so building never fails); rules and outputs may refer to
    both. `run` builds the table once, finds the first failing row of every rule with one
    aggregate (a second only on the way to an error) and returns the outputs in file order.
    """

    raw: RawTable
    texts: dict[str, str] = field(default_factory=dict)
    text_roles: dict[str, str] = field(default_factory=dict)  # text name -> its raw column
    values: dict[str, str] = field(default_factory=dict)
    rules: list[_Rule] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    native: set[str] = field(default_factory=set)  # raw columns used as they are (Parquet types)

    def has(self, role: str) -> bool:
        return role in self.raw.types

    def _type(self, role: str) -> str:
        return self.raw.types[role].upper()

    def _text(self, role: str) -> str:
        """The trimmed text of a raw column, NULL when empty (`{text}` is filled in by `run`)."""
        name = f"t_{role}"
        self.text_roles[name] = role
        self.texts[name] = "nullif({text}, '')"
        return name

    def _needs_trim(self) -> set[str]:
        """The text roles where some value may start or end with whitespace.

        A cheap scan of first and last characters (ASCII control or space, or any non-ASCII
        character) spares the trimming expression, which is slow, on columns that need none.
        """
        roles = sorted(set(self.text_roles.values()))
        if self.raw.trimmed or not roles:
            return set()
        ends = []
        for role in roles:
            x = f"CAST({_q(role)} AS VARCHAR)"
            ends += [f"min(ord({x})), max(ord({x})), min(ord(right({x}, 1))), max(ord(right({x}, 1)))"]
        found = list(_first(self.raw.con, f"SELECT {', '.join(ends)} FROM raw") or ())
        return {
            role
            for k, role in enumerate(roles)
            if any(v is not None and not 33 <= v <= 127 for v in found[4 * k : 4 * k + 4])
        }

    def _native(self, role: str) -> str:
        self.native.add(role)
        return _q(role)

    def _rule(
        self, role: str, bad: str, shown: str, problem: Callable[[Any], str], guard: str | None = None
    ) -> None:
        self.rules.append(_Rule(role, bad, shown, problem, guard))

    def text_id(self, role: str, what: str) -> str:
        """Required text (ids): trimmed, never empty."""
        t = self._text(role)
        self._rule(role, f"{t} IS NULL", "NULL", lambda _: f"empty {what}")
        return t

    def unique_id(self, role: str, what: str, noun: str) -> str:
        """Required text that no other row has (the first row of a repeated value is reported)."""
        t = self.text_id(role, what)
        self.values[f"n_{role}"] = f"count(*) OVER (PARTITION BY {t})"
        self._rule(role, f"n_{role} > 1", t, lambda v: f"{noun} {v!r} appears more than once")
        return t

    def rule(self, role: str, bad: str, problem: str) -> None:
        """A rule with a fixed message, checked after the ones added before it."""
        self._rule(role, bad, "NULL", lambda _: problem)

    def optional_text(self, role: str) -> str:
        """Trimmed text, NULL when empty."""
        return self._text(role)

    def choice(self, role: str, allowed: Sequence[str], what: str, default: str | None = None) -> str:
        """Lower-cased text that must be one of `allowed`; empty is `default` (None: an error)."""
        t = self._text(role)
        name = f"v_{role}"
        param = f"allowed_{role}"
        self.params[param] = list(allowed)
        if default is None:
            self.values[name] = f"coalesce(lower({t}), '')"
        else:
            self.params[f"default_{role}"] = default
            self.values[name] = f"coalesce(lower({t}), $default_{role})"
        listed = ", ".join(allowed)
        self._rule(
            role, f"NOT list_contains(${param}, {name})", name, lambda v: f"{v!r} is not {what} ({listed})"
        )
        return name

    def cents(self, role: str, *, max_integer_digits: int = 12, empty_as_zero: bool = False) -> str:
        """Money to BIGINT cents, exactly. Text must be a plain decimal with at most 2 places."""
        name = f"v_{role}"
        if self._type(role) in _FLOAT_TYPES:
            x = self._native(role)
            # Floats only when they are cents plus binary noise.
            self._rule(
                role,
                f"{x} IS NULL OR abs({x} - round({x}, 2)) > 1e-6",
                x,
                lambda v: f"{v!r} is not an amount with at most 2 decimal places",
            )
            self.values[name] = f"TRY_CAST(round(round({x}, 2) * 100) AS BIGINT)"
            shown = x
        else:
            t = self._text(role)
            if empty_as_zero:
                self.texts[t] = f"coalesce({self.texts[t]}, '0')"  # still a template
            else:
                empty = "empty value (expected a number like 12.34)"
                self._rule(role, f"{t} IS NULL", "NULL", lambda _: empty)
            # Exact: the rules below leave at most 12 integer digits and 2 significant decimals.
            self.values[name] = f"TRY_CAST(TRY_CAST({t} AS DECIMAL(18, 2)) * 100 AS BIGINT)"
            # A text passing _PLAIN_AMOUNT with a value has a digit, so passes all three rules.
            guard = f"NOT regexp_matches({t}, {_lit(_PLAIN_AMOUNT)}) OR {name} IS NULL"
            for pattern, problem in (
                (_NUMBER, "is not a number (expected digits with an optional '.', like 12.34)"),
                (_AT_MOST_TWO_DECIMALS, "has more than 2 decimal places"),
                (_AT_MOST_12_INTEGER_DIGITS, "is too large (at most 12 digits before the decimal point)"),
            ):
                self._rule(role, f"NOT regexp_matches({t}, {_lit(pattern)})", t, _quoted(problem), guard)
            shown = t
        self._rule(role, f"{name} IS NULL", shown, lambda v: f"{v!r} is too large")
        limit = 10 ** (max_integer_digits + 2)
        self._rule(role, f"abs({name}) >= {limit}", name, lambda v: f"{v / 100:.2f} is too large")
        return name

    def quantity(self, role: str = "quantity") -> str:
        """Whole numbers to BIGINT, within INTEGER range."""
        name = f"v_{role}"
        if self._type(role) in _INTEGER_TYPES:
            x = self._native(role)
            self._rule(role, f"{x} IS NULL", "NULL", lambda _: "empty quantity")
            self.values[name] = f"TRY_CAST({x} AS BIGINT)"
        else:
            t = self._text(role)
            self._rule(role, f"{t} IS NULL", "NULL", lambda _: "empty quantity (expected a whole number)")
            self._rule(role, f"NOT regexp_matches({t}, {_lit(_INTEGER)})", t, _quoted("is not a whole number"))
            self._rule(role, f"length({t}) > 11", t, lambda v: f"{v!r} is too large")
            self.values[name] = f"TRY_CAST({t} AS BIGINT)"
        self._rule(role, f"{name} IS NULL OR abs({name}) > {_INT32_MAX}", name, lambda v: f"{v} is too large")
        return name

    def times(self, role: str, date_format: str | None, *, optional: bool = False) -> str:
        """Dates or date-times to BIGINT microseconds since the epoch (UTC); NULL when empty.

        Empty values are an error unless `optional`. Date-only values mean midnight UTC; ISO
        values with a zone offset are converted to UTC (the session zone is UTC).
        """
        name = f"v_{role}"
        kind = self._type(role)
        if kind.startswith("TIMESTAMP") or kind == "DATE":
            x = self._native(role)
            if not optional:
                self._rule(role, f"{x} IS NULL", "NULL", lambda _: "empty date")
            self.values[name] = f"epoch_us(CAST({x} AS TIMESTAMP))"
            return name
        t = self._text(role)
        hint = _date_hint(date_format)
        if not optional:
            self._rule(role, f"{t} IS NULL", "NULL", lambda _: f"empty date ({hint})")
        if date_format is None:
            parsed = (
                f"CASE WHEN regexp_matches({t}, {_lit(_NAIVE_ISO)}) THEN TRY_CAST({t} AS TIMESTAMP) "
                f"ELSE CAST(TRY_CAST({t} AS TIMESTAMPTZ) AS TIMESTAMP) END"
            )
        else:
            param = f"format_{role}"
            self.params[param] = date_format
            parsed = f"CAST(try_strptime({t}, ${param}) AS TIMESTAMP)"
        self.values[name] = f"epoch_us({parsed})"
        self._rule(
            role,
            f"{t} IS NOT NULL AND {name} IS NULL",
            t,
            lambda v: f"cannot read {v!r} as a date; {hint}",
        )
        return name

    def _first_failures(self) -> list[Any]:
        """The `_key` of the first row breaking each rule (None: no row does), in rule order.

        One scan checks the unguarded rules and the guards; a second scan, only when a guard
        fires (an error is coming), checks the rules behind it. A NULL predicate is no failure:
        the empty-value rule before it reports those rows.
        """
        con = self.raw.con

        def scan(predicates: list[str]) -> list[Any]:
            sql = "SELECT " + ", ".join(f"min(_key) FILTER (WHERE {p})" for p in predicates) + " FROM staged"
            return list(_first(con, sql, _used(sql, self.params)) or [None] * len(predicates))

        guards = list(dict.fromkeys(r.guard for r in self.rules if r.guard is not None))
        plain = [r for r in self.rules if r.guard is None]
        first = scan([r.bad for r in plain] + guards)
        found = dict(zip((id(r) for r in plain), first, strict=False))
        fired = {g for g, key in zip(guards, first[len(plain) :], strict=True) if key is not None}
        behind = [r for r in self.rules if r.guard in fired]
        if behind:
            found.update(zip((id(r) for r in behind), scan([r.bad for r in behind]), strict=True))
        return [found.get(id(r)) for r in self.rules]

    def run(self, outputs: Sequence[str], date_format: str | None = None) -> pa.Table:
        """Build the typed table, raise for the first broken rule, return `outputs` by file row."""
        con, source = self.raw.con, self.raw.source
        # Only what the rules and outputs use: copying every raw column costs time on big files.
        texts = "".join(f", {_q(role)}" for role in sorted(self.native))
        trim = self._needs_trim()
        for name, template in self.texts.items():
            role = self.text_roles[name]
            text = f"CAST({_q(role)} AS VARCHAR)"
            if role in trim:
                text = (
                    f"CASE WHEN regexp_matches({text}, {_lit(_EDGE_WHITESPACE)}) "
                    f"THEN trim({text}, {_WHITESPACE_CHARS_SQL}) ELSE {text} END"
                )
            texts += f", {template.format(text=text)} AS {name}"
        values = "".join(f", {sql} AS {name}" for name, sql in self.values.items())
        try:
            sql = f"CREATE OR REPLACE TEMP TABLE staged AS SELECT *{values} FROM (SELECT _key{texts} FROM raw)"
            con.execute(sql, _used(sql, self.params))
        except duckdb.Error as exc:
            if date_format is not None and "format" in str(exc).lower():
                raise TransactionFileError(f"--date-format {date_format!r}: {_one_line(exc)}") from None
            raise
        if self.rules:
            for rule, key in zip(self.rules, self._first_failures(), strict=True):
                if key is not None:
                    shown = _first(con, f"SELECT {rule.shown} FROM staged WHERE _key = $key", {"key": key})
                    raise TransactionFileError(
                        f"{source.where_key(int(key))}, column {source.column(rule.role)!r}: "
                        f"{rule.problem(shown[0] if shown else None)}"
                    )
        columns = ", ".join(outputs)
        return con.sql(f"SELECT {columns} FROM staged ORDER BY _key").to_arrow_table()


def _used(sql: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """The named parameters `sql` refers to (DuckDB rejects values for parameters it lacks)."""
    used = {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)}
    return used or None
