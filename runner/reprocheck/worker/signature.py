"""What a model accepts, read from its code before it runs: the keyword inputs its forward takes (a misspelt
`input_idz` is named with did-you-mean, never left to the model's own error), and the keys a Hugging Face config
class defines (`n_embed` for GPT-2's `n_embd` would silently build the default model)."""

from __future__ import annotations

import difflib
import inspect
import re
from typing import Any


class KeywordInputMismatch(ValueError):
    """A keyword input the model's forward does not take (ours: no traceback)."""


def forward_parameters(forward: Any, closed_kwargs: tuple[str, ...] | None = None) -> list[str] | None:
    """The keyword names a forward takes; None when it takes any (`**kwargs`), unless `closed_kwargs` says what its
    **kwargs accept (Hugging Face forwards pass attention options through them, never model inputs)."""
    try:
        params = inspect.signature(forward).parameters
    except (TypeError, ValueError):
        return None  # a builtin or scripted forward: nothing to read
    names = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in ("self",)]
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        if closed_kwargs is None:
            return None
        names += [n for n in closed_kwargs if n not in names]
    return names


def keyword_problems(given: list[str], accepted: list[str] | None, what: str) -> list[tuple[str, str]]:
    """(name, message) for each keyword input `what` does not take."""
    if accepted is None:
        return []
    problems = []
    for name in given:
        if name in accepted:
            continue
        close = difflib.get_close_matches(name, accepted, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'? " if close else ""
        shown = ", ".join(accepted[:25]) + (", ..." if len(accepted) > 25 else "")
        problems.append((name, f"{what} takes no parameter '{name}' ({hint}it takes: {shown})"))
    return problems


def check_module_keywords(module: Any, given: list[str]) -> None:
    """In a run, before the forward: raise KeywordInputMismatch for a keyword input the built model does not take."""
    forward = getattr(module, "forward", None)
    if not given or forward is None:
        return
    problems = keyword_problems(given, forward_parameters(forward), f"{type(module).__name__}.forward")
    if problems:
        name, message = problems[0]
        raise KeywordInputMismatch(f"input.kwargs.{name}: {message}")


def transformers_kwargs(transformers: Any) -> tuple[str, ...]:
    """The names a transformers forward's **kwargs take (TransformersKwargs), where this version declares them."""
    declared = getattr(getattr(transformers, "utils", None), "generic", None)
    typed = getattr(declared, "TransformersKwargs", None)
    if typed is None:
        return ()
    return tuple(sorted(getattr(typed, "__required_keys__", set()) | getattr(typed, "__optional_keys__", set())))


# What every transformers config takes beside its own fields (PretrainedConfig reads them from its **kwargs).
CONFIG_OPTIONS = ("attn_implementation", "experts_implementation", "torch_dtype", "name_or_path", "output_attentions")


def config_keys(config_class: Any, model_class: Any = None) -> set[str]:
    """Every key a transformers config class takes: its own arguments, their aliases (attribute_map), what a
    default config holds, its nested configs, and every name its module or the model's reads (`config.x`,
    `kwargs.pop("x")`): models read keys the class never declares."""
    keys = {"model_type", *CONFIG_OPTIONS}
    for cls in inspect.getmro(config_class):
        init = cls.__dict__.get("__init__")
        if init is not None:
            with_params = inspect.signature(init).parameters
            keys |= {n for n, p in with_params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        keys |= set(getattr(cls, "attribute_map", {}) or {})
        keys |= {n for n in inspect.get_annotations(cls) if not n.startswith("_")}
        keys |= {n for n, v in cls.__dict__.items() if isinstance(v, property)}
    keys |= set(getattr(config_class, "sub_configs", {}) or {})
    try:
        keys |= set(config_class().to_dict())
    except Exception:  # a config that cannot be built without arguments: the rest is what we have
        pass
    for cls in (config_class, model_class):
        keys |= _names_read(cls)
    return keys - {"self", "kwargs"}


_READ = re.compile(r"""(?:config|self)\.(\w+)|["'](\w+)["']""")


def _names_read(cls: Any) -> set[str]:
    """The names a class's module may read from a config: `config.x`, `self.x`, and every quoted name
    (`pop("x")`, `getattr(c, "x")`, `{"x": ...}`)."""
    module = inspect.getmodule(cls) if cls is not None else None
    try:
        source = inspect.getsource(module) if module is not None else ""
    except (OSError, TypeError):
        return set()
    return {a or b for a, b in _READ.findall(source)}


def unknown_config_keys(config: dict[str, Any], config_class: Any, model_class: Any = None) -> list[tuple[str, str]]:
    """(key, message) for each top-level key of `config:` that neither the config class nor the model takes."""
    known = sorted(config_keys(config_class, model_class))
    out = []
    for key in config:
        if key in known:
            continue
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else f"see {config_class.__name__}'s documentation"
        out.append((key, f"unknown key for {config_class.__name__} ({hint}); it would be ignored"))
    return out
