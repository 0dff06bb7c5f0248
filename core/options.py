"""Declared options: what a user may type after ``NAME:`` is declared once, on its owner.

Every method, degradation kind, chain step and training recipe declares its options as a tuple
of :class:`Option` (name, type, allowed values or range, default, one-line help, and whether the
option changes outputs). One parser reads every ``name:key=value,...`` spec
(:func:`parse_spec`), one function checks the given values against the declarations
(:func:`resolve`), and one function writes the canonical id (:func:`canonical_id`: sorted,
defaults dropped, only options that change outputs). Errors name the option, the allowed values
and the closest known name. ``bench methods show``, ``bench degradations`` and the generated
option tables of the docs read the same declarations (:func:`table_rows`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from carbench.core.errors import BenchError

TYPES = ("str", "int", "float", "bool", "choice", "path")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


class OptionError(BenchError, ValueError):
    """A spec names an unknown option or gives a value its declaration refuses."""


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``"; did you mean `qf`?"`` for the closest known name, ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"; did you mean `{close[0]}`?" if close else ""


def unknown_name(what: str, name: str, known: Iterable[str], hint: str = "") -> OptionError:
    """The error for an unknown method/metric/dataset/... name, with the closest known one."""
    known = sorted(known)
    return OptionError(
        f"unknown {what} {name!r}{did_you_mean(name, known)} (known: {', '.join(known)}"
        + (f"; {hint})" if hint else ")")
    )


def _number_text(value: float) -> str:
    """Shortest round-trip text of a float, ``4.0`` written ``4``."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


@dataclass(frozen=True)
class Option:
    """One declared option.

    ``default`` None means "not set": the owner decides what happens (``help`` says what).
    ``in_id`` False for options that do not change outputs (they never enter the id);
    ``always_in_id`` for an option the id shows even at its default (e.g. an output size).
    """

    name: str
    type: str = "str"
    default: Any = None
    help: str = ""
    choices: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    in_id: bool = True
    always_in_id: bool = False
    required: bool = False

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"option {self.name}: type must be one of {TYPES}, got {self.type}")
        if self.type == "choice" and not self.choices:
            raise ValueError(f"option {self.name}: a choice needs its choices")

    def describe(self) -> str:
        """The type as a user reads it: ``int 1-100``, ``one of: on, off``, ``float >= 0``."""
        if self.type == "choice":
            return "one of: " + ", ".join(self.choices)
        if self.type == "bool":
            return "bool (1/0, true/false, yes/no, on/off)"
        lo, hi = self.min, self.max
        fmt = _number_text if self.type == "float" else (lambda v: str(int(v)))
        if lo is not None and hi is not None:
            return f"{self.type} {fmt(lo)}-{fmt(hi)}"
        if lo is not None:
            return f"{self.type} >= {fmt(lo)}"
        if hi is not None:
            return f"{self.type} <= {fmt(hi)}"
        return self.type

    def parse(self, raw: Any, owner: str) -> Any:
        """The typed value of ``raw`` (text, or a value of the right type), or an
        :class:`OptionError` naming the option, the owner and what is allowed."""
        text = raw if isinstance(raw, str) else self.text(raw)
        text = text.strip()

        def bad(why: str) -> OptionError:
            return OptionError(
                f"option `{self.name}` of {owner} takes {self.describe()}, got {text!r}{why}"
            )

        if self.type in ("str", "path"):
            if not text:
                raise bad(" (empty)")
            return text
        if self.type == "choice":
            if text not in self.choices:
                raise bad(did_you_mean(text, self.choices))
            return text
        if self.type == "bool":
            if text.lower() in _TRUE:
                return True
            if text.lower() in _FALSE:
                return False
            raise bad("")
        try:
            value: float = int(text) if self.type == "int" else float(text)
        except ValueError:
            raise bad("") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise bad("")
        if (self.min is not None and value < self.min) or (
            self.max is not None and value > self.max
        ):
            raise bad(" (out of range)")
        return value

    def text(self, value: Any) -> str:
        """The canonical text of a value (as ids and tables write it)."""
        if self.type == "bool":
            return "1" if value else "0"
        if self.type == "float":
            return _number_text(value)
        return str(value)


def parse_spec(spec: str, what: str = "spec") -> tuple[str, dict[str, str]]:
    """``name:key=value,key2=value2`` -> ``(name, {key: value})``: the one parser of every
    single-valued ``name:k=v`` spec (methods, training recipes). A key given twice, or a part
    without ``=``, is an error naming it."""
    name, _, rest = str(spec).strip().partition(":")
    given: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise OptionError(f"{what} {spec!r}: {part!r} is not key=value")
        if key in given:
            raise OptionError(f"{what} {spec!r}: option `{key}` given twice")
        given[key] = value.strip()
    return name.strip(), given


def check_known(owner: str, declared: Sequence[Option], keys: Iterable[str]) -> None:
    """Refuse the first key that ``declared`` does not name."""
    names = [o.name for o in declared]
    for key in keys:
        if key not in names:
            raise OptionError(
                f"unknown option `{key}` for {owner} (known: {', '.join(names) or 'none'})"
                + did_you_mean(key, names)
            )


def resolve(owner: str, declared: Sequence[Option], given: Mapping[str, Any]) -> dict[str, Any]:
    """Every declared option's value: ``given`` parsed against its declaration, else the
    default. Unknown keys, wrong types, out-of-range values and missing required options are
    :class:`OptionError` naming the option."""
    check_known(owner, declared, given)
    out: dict[str, Any] = {}
    for opt in declared:
        if opt.name in given:
            out[opt.name] = opt.parse(given[opt.name], owner)
        elif opt.required:
            raise OptionError(f"{owner} needs option `{opt.name}` ({opt.describe()}): {opt.help}")
        else:
            out[opt.name] = opt.default
    return out


def resolve_lists(
    owner: str, declared: Sequence[Option], given: Mapping[str, list[str]], example: str = ""
) -> dict[str, list[Any]]:
    """:func:`resolve` for specs that list several values per option (``q=5,10,20``): each
    value checked, defaults as one-element lists, options without value or default absent."""
    check_known(owner, declared, given)
    out: dict[str, list[Any]] = {}
    for opt in declared:
        if opt.name in given:
            values = given[opt.name]
            if not values:
                raise OptionError(f"option `{opt.name}` of {owner} has no value")
            out[opt.name] = [opt.parse(v, owner) for v in values]
        elif opt.required:
            eg = f", e.g. {example}" if example else ""
            raise OptionError(f"{owner} needs {opt.name}=...{eg}")
        elif opt.default is not None:
            out[opt.name] = [opt.default]
    return out


def id_options(declared: Sequence[Option], values: Mapping[str, Any]) -> dict[str, str]:
    """The options an id shows: those that change outputs, set and not at their default
    (``always_in_id`` ones even at it), as canonical text."""
    shown: dict[str, str] = {}
    for opt in declared:
        value = values.get(opt.name)
        if not opt.in_id or value is None:
            continue
        if opt.always_in_id or value != opt.default:
            shown[opt.name] = opt.text(value)
    return shown


def canonical_id(name: str, declared: Sequence[Option], values: Mapping[str, Any]) -> str:
    """``name`` or ``name:k=v,...``: the shown options (:func:`id_options`) sorted by key."""
    shown = id_options(declared, values)
    return name + (":" + ",".join(f"{k}={shown[k]}" for k in sorted(shown)) if shown else "")


def table_rows(declared: Sequence[Option]) -> list[dict[str, str]]:
    """One row per option for listings and generated docs: name, type, default, in id, help."""
    def default(o: Option) -> str:
        return "required" if o.required else ("-" if o.default is None else o.text(o.default))

    return [
        {
            "option": o.name,
            "type": o.describe(),
            "default": default(o),
            "in id": "yes" if o.in_id else "no",
            "help": o.help,
        }
        for o in declared
    ]


def markdown_table(declared: Sequence[Option]) -> str:
    """:func:`table_rows` as a Markdown table (``none`` when nothing is declared)."""
    rows = table_rows(declared)
    if not rows:
        return "no options\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        cells = [r[c].replace("|", "\\|") for c in cols]
        cells[0] = f"`{cells[0]}`"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
