"""Finding the objectives: every module of this package, and every entry point in the
`mtp_harness.objectives` group, so that another package adds one without touching this repo.

A module's kind is its file name (an entry point's, its name); the module defines one
`ObjectiveConfig` subclass with that `kind`. Every module of the folder is an objective except
`base`, `registry` and names starting with an underscore (for helpers). The recipe schema's `objective:` union is built
from what is found, so an unknown kind fails when the recipe is read (`harness plan`,
before anything runs), naming the registered kinds and the close ones. Discovery imports
only the objectives' torch-free top level (see this package's docstring).

A third-party package declares, in its pyproject.toml:
    [project.entry-points."mtp_harness.objectives"]
    my_kind = "my_package.my_kind"        # a module defining an ObjectiveConfig with kind "my_kind"
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import pkgutil
from types import ModuleType
from typing import Any

from harness.errors import HarnessError, one_line
from harness.model.objectives.base import ObjectiveConfig

ENTRY_POINT_GROUP = "mtp_harness.objectives"
DEFAULT_KIND = "stp"  # what a recipe without `objective:` trains
_NOT_OBJECTIVES = {"base", "registry"}


def _config_class(module: ModuleType, kind: str, where: str) -> type[ObjectiveConfig]:
    """The one ObjectiveConfig subclass `module` defines for `kind`."""
    found = [
        obj for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, ObjectiveConfig) and obj.__module__ == module.__name__
        and obj.model_fields["kind"].default == kind
    ]  # fmt: skip
    if len(found) != 1:
        raise HarnessError(
            f"objective {kind!r} ({where}): expected one ObjectiveConfig subclass with kind {kind!r} "
            f"in {module.__name__}, found {len(found)}",
            fix="define `KIND = kind_of(__name__)` and `kind: Literal[KIND] = KIND` in the objective's config",
        )
    return found[0]


def _import(name: str, where: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception as exc:  # a broken plug-in is the user's to fix, not a harness bug
        raise HarnessError(f"objective module {name} ({where}) failed to import: {one_line(exc)}",
                           fix="fix or uninstall the package that provides it") from None


def _package_objectives() -> dict[str, type[ObjectiveConfig]]:
    import harness.model.objectives as package

    found = {}
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name in _NOT_OBJECTIVES or info.name.startswith("_"):
            continue
        module = _import(f"{package.__name__}.{info.name}", "this package")
        found[info.name] = _config_class(module, info.name, "this package")
    return found


def _entry_point_objectives() -> dict[str, type[ObjectiveConfig]]:
    from importlib.metadata import entry_points

    found = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        where = f"entry point {ep.name} = {ep.value}"
        module_name, _, attr = ep.value.partition(":")
        module = _import(module_name.strip(), where)
        if attr:
            cls = getattr(module, attr.strip(), None)
            if not (inspect.isclass(cls) and issubclass(cls, ObjectiveConfig)
                    and cls.model_fields["kind"].default == ep.name):
                raise HarnessError(f"objective {ep.name!r} ({where}): not an ObjectiveConfig with kind {ep.name!r}")
        else:
            cls = _config_class(module, ep.name, where)
        found[ep.name] = cls
    return found


@functools.cache
def registered() -> dict[str, type[ObjectiveConfig]]:
    """kind -> config class: the default (STP) first, then the rest in name order."""
    found = _package_objectives()
    for kind, cls in _entry_point_objectives().items():
        if kind in found:
            raise HarnessError(
                f"objective {kind!r} is defined twice: {found[kind].__module__} and {cls.__module__}",
                fix="rename one of them (an objective's kind is its module's or entry point's name)",
            )
        found[kind] = cls
    if DEFAULT_KIND not in found:
        raise HarnessError(f"no objective {DEFAULT_KIND!r} (the default) among {', '.join(found)}")
    return {DEFAULT_KIND: found[DEFAULT_KIND], **{k: c for k, c in sorted(found.items()) if k != DEFAULT_KIND}}


def objective_class(kind: str) -> type[ObjectiveConfig]:
    """The config class registered as `kind`; an unknown kind names the close ones."""
    known = registered()
    if kind not in known:
        raise HarnessError(unknown_kind_message(kind, list(known)), fix="set objective.kind to a registered kind")
    return known[kind]


def unknown_kind_message(kind: str, known: list[str]) -> str:
    close = difflib.get_close_matches(str(kind), known, n=3)
    hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
    return f"unknown objective {kind!r}; {hint}registered: {', '.join(known)}"


@functools.cache
def objective_union() -> Any:
    """The type of a recipe's `objective:` section: one of the registered configs, by `kind`."""
    from harness.config_tree import kind_union

    return kind_union(*registered().values())


def objective_config(data: dict) -> ObjectiveConfig:
    """Validate an `objective:` mapping (a recipe's, an export's mtp_config.json's)."""
    from pydantic import TypeAdapter, ValidationError

    kind = data.get("kind", DEFAULT_KIND)
    objective_class(kind)  # the clear error for an unknown kind
    try:
        return TypeAdapter(objective_union()).validate_python(data)
    except ValidationError as exc:
        raise HarnessError(f"objective {kind!r}: {one_line(exc)}") from None


def described(data: dict) -> ObjectiveConfig | None:
    """A recorded `objective:` mapping (a finished run's) as its config, or None when its kind
    is not installed here or its fields no longer validate: reports then show the raw kind."""
    try:
        return objective_config(data)
    except HarnessError:
        return None


def method_name(kind: str) -> str:
    """The method's name in tables and plots ("Meta", "DeepSeek"); the kind when unknown."""
    cls = registered().get(kind)
    return cls.method if cls is not None and cls.method else kind


def default_objective() -> ObjectiveConfig:
    return registered()[DEFAULT_KIND]()
