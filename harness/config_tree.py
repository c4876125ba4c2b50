"""Nested YAML config trees: reading, deep merge with provenance, dotted overrides, errors.

Shared by recipes and study files. Merging follows lm-eval's `include` on purpose, but deep:
mappings merge key by key, lists and scalars are replaced whole. Every leaf remembers the
file (or override) that set it, so a validation error can point at the right file.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, Discriminator, Tag, ValidationError

from harness.errors import HarnessError, one_line


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `3e-4` as a float, as YAML 1.2 does (PyYAML wants `3.0e-4`)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


# A recipe or study is settings: a few KB. The bounds make hostile files fail in milliseconds:
# PyYAML shares an alias's node, but merging (`<<`), our deep merge and pydantic's errors
# walk every expanded copy, so a "billion laughs" document would run for hours or exhaust memory.
MAX_YAML_BYTES = 1 << 20
MAX_YAML_VALUES = 100_000  # nodes after expanding every alias where it is used
MAX_ERROR_LINES = 20


def parse_yaml(text: str, label: str) -> Any:
    if len(text) > MAX_YAML_BYTES:
        raise HarnessError(f"{label}: {len(text) / 1e6:.1f} MB is too large for a recipe (limit "
                           f"{MAX_YAML_BYTES / 1e6:.1f} MB)", fix="a recipe holds settings; put data in the files it names")
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_VALUES:
            raise HarnessError(f"{label}: its aliases expand to more than {MAX_YAML_VALUES:,} values",
                               fix="write the values out, or nest fewer aliases (a YAML alias bomb is refused)")
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise HarnessError(f"{label}:{where}: not valid YAML: {one_line(getattr(exc, 'problem', exc))}") from None
    except RecursionError:
        raise HarnessError(f"{label}: nested too deeply to be a recipe") from None
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many nodes the document has once every alias is copied where it is used; each
    distinct node is counted once (memo), so this takes time in the size of the file."""
    if id(node) in memo:
        return memo[id(node)]
    if isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    elif isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(item, memo) for item in node.value)
    else:
        size = 1
    memo[id(node)] = min(size, MAX_YAML_VALUES + 1)  # saturate: the bound is all that matters
    return memo[id(node)]


def read_yaml(path: Path, referrer: Path | None = None) -> dict:
    """A YAML file that must hold one mapping."""
    if not path.is_file():
        via = f" (named by extends: in {referrer})" if referrer else ""
        raise HarnessError(f"{path}: no such file{via}", fix="check the path; extends: is relative to the file")
    data = parse_yaml(path.read_text(encoding="utf-8"), str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise HarnessError(f"{path}: must hold a mapping of sections, got {type(data).__name__}")
    return data


def _leaves(data: dict, prefix: str = "") -> typing.Iterator[str]:
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            yield from _leaves(value, path + ".")
        else:
            yield path


def merge_with_origins(base: dict, base_origins: dict[str, str], over: dict, label: str):
    """Deep-merge `over` onto `base` (mappings merge, everything else is replaced; a mapping
    whose `kind:` changes is replaced whole, since the old kind's keys mean nothing to the new)."""
    merged = _deep_merge(base, over)
    leaves = set(_leaves(over))
    replaced = _kind_changes(base, over)
    # An origin is replaced if a leaf of `over` is it, is above it or is below it.
    above = {path.rsplit(".", i)[0] for path in leaves for i in range(1, path.count(".") + 1)}
    origins = {k: v for k, v in base_origins.items()
               if k not in above and not any(prefix in leaves or prefix in replaced for prefix in _prefixes(k))}
    origins.update({p: label for p in leaves})
    return merged, origins


def _prefixes(path: str) -> list[str]:
    """`a.b.c` -> [`a`, `a.b`, `a.b.c`]."""
    parts = path.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _covers(path: str, other: str) -> bool:
    return other == path or other.startswith(path + ".") or path.startswith(other + ".")


def _kind_switch(base_value, value) -> bool:
    return (isinstance(value, dict) and isinstance(base_value, dict) and "kind" in value
            and value["kind"] != base_value.get("kind", value["kind"]))


def _kind_changes(base: dict, over: dict, prefix: str = "") -> set[str]:
    """Dotted paths of the mappings `over` gives another `kind:` than `base` has."""
    found = set()
    for key, value in over.items():
        path = f"{prefix}{key}"
        if _kind_switch(base.get(key), value):
            found.add(path)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            found |= _kind_changes(base[key], value, path + ".")
    return found


def _deep_merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and not _kind_switch(out[key], value):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


# --- the schema, walked by dotted path ------------------------------------------------


def kind_union(*members: type[BaseModel]) -> Any:
    """A union picked by the `kind:` key; without one the first member applies, so that
    `data.tokenizer.min_frequency=3` works on the default tokenizer without naming it."""
    kinds = [m.model_fields["kind"].default for m in members]

    def kind(value: Any) -> str | None:
        return value.get("kind", kinds[0]) if isinstance(value, dict) else getattr(value, "kind", None)

    tagged = tuple(typing.Annotated[m, Tag(k)] for m, k in zip(members, kinds))
    return typing.Annotated[
        Union[tagged],
        Discriminator(
            kind,
            custom_error_type="invalid_kind",
            custom_error_message=f"kind must be one of {', '.join(map(repr, kinds))}",
            custom_error_context={"kinds": ",".join(kinds)},
        ),
    ]


def _strip(annotation: Any) -> Any:
    """Unwrap Annotated[...] and Optional[...] down to the interesting type."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _strip(args[0])
    return annotation


def _model_for(annotation: Any, data: Any) -> type[BaseModel] | None:
    """The model class a node is validated as; a tagged union is resolved by `kind`."""
    annotation = _strip(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (Union, types.UnionType):
        members = [_strip(a) for a in typing.get_args(annotation)]
        members = [m for m in members if isinstance(m, type) and issubclass(m, BaseModel)]
        kind = data.get("kind") if isinstance(data, dict) else None
        for member in members:
            if "kind" in member.model_fields and member.model_fields["kind"].default == kind:
                return member
        return members[0] if members and kind is None else None  # kind_union's default
    return None


def field_at(schema: type[BaseModel], data: dict, path: str) -> Any:
    """The annotation of a dotted field path; an unknown path is an error naming what is allowed."""
    annotation: Any = schema
    node: Any = data
    walked: list[str] = []
    for part in path.split("."):
        model = _model_for(annotation, node)
        if model is not None:
            if part not in model.model_fields:
                where = ".".join(walked) or "the top level"
                allowed = ", ".join(model.model_fields)
                hint = did_you_mean(schema, model, part, walked)
                raise HarnessError(f"unknown key {part!r} in {where}{hint}; allowed: {allowed}")
            annotation = model.model_fields[part].annotation
        elif typing.get_origin(_strip(annotation)) is dict:
            annotation = typing.get_args(_strip(annotation))[1]
        else:
            raise HarnessError(f"{'.'.join(walked)} is a value, not a section; it has no key {part!r}")
        walked.append(part)
        node = node.get(part) if isinstance(node, dict) else None
    return annotation


def _leaf_paths(model: type[BaseModel], prefix: str = "", depth: int = 0) -> typing.Iterator[str]:
    """Every dotted field path under a model (kind unions: each member's fields)."""
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        yield path
        annotation = _strip(info.annotation)
        members = [annotation] if isinstance(annotation, type) else [_strip(a) for a in typing.get_args(annotation)]
        for member in members:
            if depth < 6 and isinstance(member, type) and issubclass(member, BaseModel):
                yield from _leaf_paths(member, path + ".", depth + 1)


def did_you_mean(schema: type[BaseModel], model: type[BaseModel], part: str, walked: list[str]) -> str:
    """'; did you mean X?' for an unknown key: a close spelling among the keys allowed there,
    else a field of exactly that name elsewhere under the same section (`train.lr` ->
    `train.optimizer.lr`); '' when nothing is close."""
    close = difflib.get_close_matches(part, list(model.model_fields), n=1, cutoff=0.75)
    if close:
        return f"; did you mean {'.'.join([*walked, close[0]])!r}?"
    section = walked[0] if walked else ""
    found = [p for p in _leaf_paths(schema) if p.rsplit(".", 1)[-1] == part and p.startswith(section)]
    return f"; did you mean {' or '.join(map(repr, found[:2]))}?" if found else ""


def _wants_text(annotation: Any) -> bool:
    annotation = _strip(annotation)
    if annotation in (str, Path):
        return True
    return typing.get_origin(annotation) is Literal and all(isinstance(a, str) for a in typing.get_args(annotation))


# Passed as a value to `set_value`, removes the key so that the schema's default applies.
DELETE = object()


def set_value(schema: type[BaseModel], data: dict, origins: dict, path: str, value: Any, label: str) -> None:
    """Set (or with `delete`, remove) a dotted path after checking it against the schema."""
    field_at(schema, data, path)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    if value is DELETE:
        node.pop(last, None)
    elif last == "kind" and node.get("kind", value) != value:
        # Another kind is another schema: the old kind's fields go, as when a file's mapping
        # switches `kind:` (`_kind_switch`), so `objective.kind=deepseek` on a Meta recipe
        # does not leave Meta's `n` behind.
        node.clear()
        node[last] = value
        for key in [k for k in origins if k.startswith(".".join(parents) + ".")]:
            del origins[key]
    else:
        node[last] = value
    for key in [k for k in origins if _covers(path, k)]:
        del origins[key]
    origins[path] = label



def apply_overrides(schema: type[BaseModel], data: dict, origins: dict, items) -> None:
    """Apply `key=value` / `~key` overrides in order, except that `...kind=` ones come first:
    a kind decides which keys exist beside it, so `objective.depth=2 objective.kind=deepseek`
    means the same as the other order."""
    items = list(items)
    kinds = [i for i in items if i.split("=", 1)[0].strip().endswith("kind") and "=" in i]
    for item in kinds + [i for i in items if i not in kinds]:
        apply_override(schema, data, origins, item)


def apply_override(schema: type[BaseModel], data: dict, origins: dict, item: str) -> None:
    """Apply `a.b=value` (typed by the schema) or `~a.b` (back to the default) in place."""
    label = f"override {item!r}"
    if item.startswith("~"):
        path, value = item[1:], DELETE
    elif "=" in item:
        path, raw = item.split("=", 1)
        value = _typed(schema, data, path.strip(), raw, label)
    else:
        raise HarnessError(f"{label}: expected key.path=value or ~key.path")
    path = path.strip()
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*", path):
        raise HarnessError(f"{label}: {path!r} is not a dotted key path like train.seed")
    try:
        set_value(schema, data, origins, path, value, label)
    except HarnessError as exc:
        raise HarnessError(f"{label}: {exc}") from None


def _typed(schema: type[BaseModel], data: dict, path: str, raw: str, label: str) -> Any:
    """Strings stay strings where the schema wants text; everything else is read as YAML."""
    try:
        annotation = field_at(schema, data, path)
    except HarnessError as exc:
        raise HarnessError(f"{label}: {exc}") from None
    if _wants_text(annotation) and raw not in ("null", "~"):
        return raw
    return parse_yaml(raw, label) if raw.strip() else None


# --- validation errors, one line each --------------------------------------------------


def _display_path(loc: tuple, data: Any) -> str:
    """Drop the union tags pydantic puts into locations (`objective.meta.n` -> `objective.n`)."""
    parts, node = [], data
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("kind") == part:
            continue
        parts.append(str(part))
        node = node.get(part) if isinstance(node, dict) else (
            node[part] if isinstance(node, list) and isinstance(part, int) and part < len(node) else None
        )
    return ".".join(parts)


def _origin(path: str, origins: dict[str, str], label: str) -> str:
    if path in origins:
        return origins[path]
    for key, value in origins.items():
        if key.startswith(path + "."):
            return value
    while "." in path:
        path = path.rsplit(".", 1)[0]
        if path in origins:
            return origins[path]
    return label


def format_validation_error(exc: ValidationError, schema, data: dict, origins: dict, label: str) -> str:
    """One line per problem: `file: field.path: what is wrong and what is allowed`; the first
    MAX_ERROR_LINES of them, then how many more (a file of junk must not print for minutes)."""
    lines = []
    # An unknown key first: a misspelt `depht` also makes `depth` missing, and the misspelling
    # is the thing to fix.
    errors = sorted(exc.errors(include_url=False), key=lambda e: e["type"] != "extra_forbidden")
    for err in errors[:MAX_ERROR_LINES]:
        path = _display_path(err["loc"], data)
        where = _origin(path, origins, label)
        kind, msg = err["type"], err["msg"]
        if kind == "extra_forbidden":
            parent = path.rsplit(".", 1)[0] if "." in path else ""
            hint = ""
            try:
                model = _model_for(field_at(schema, data, parent), _get(data, parent)) if parent else schema
                allowed = ", ".join(model.model_fields) if model else "none"
                if model:
                    hint = did_you_mean(schema, model, path.rsplit(".", 1)[-1], parent.split(".") if parent else [])
            except HarnessError:
                allowed = "see the schema"
            text = f"unknown key{hint}; allowed here: {allowed}"
        elif kind == "missing":
            text = "required, but missing"
        elif kind == "invalid_kind":
            path = f"{path}.kind" if path else "kind"
            got = err["input"].get("kind")
            close = difflib.get_close_matches(str(got), (err.get("ctx") or {}).get("kinds", "").split(","), n=2)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            text = f"{msg} (got {got!r}){hint}"
        elif kind in ("value_error", "assertion_error"):
            text = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        else:
            got = err.get("input")
            text = f"{msg} (got {got!r})" if not isinstance(got, dict) else msg
        lines.append(f"{where}: {path + ': ' if path else ''}{one_line(text)[:500]}")
    if len(errors) > MAX_ERROR_LINES:
        lines.append(f"... and {len(errors) - MAX_ERROR_LINES:,} more problems of the same kinds")
    return "\n".join(lines)


def _get(data: Any, path: str) -> Any:
    for part in path.split("."):
        data = data.get(part) if isinstance(data, dict) else None
    return data


def check_finite(model: BaseModel, origins: dict[str, str], label: str) -> None:
    """Refuse inf and NaN anywhere in a validated config (`lr=inf` passes a `gt=0` check and
    then turns every loss into NaN); one line per value, naming the file that set it."""
    bad = list(_non_finite(model.model_dump(), ""))
    if bad:
        raise HarnessError("\n".join(f"{_origin(path, origins, label)}: {path}: {value} is not a finite number"
                                     for path, value in bad[:MAX_ERROR_LINES]))


def _non_finite(value: Any, path: str) -> typing.Iterator[tuple[str, float]]:
    import math

    if isinstance(value, float) and not math.isfinite(value):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _non_finite(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _non_finite(item, f"{path}.{i}")
