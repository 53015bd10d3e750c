"""A model named on the command line: a torchvision model name (``resnet18``), a Python file and a
name in it (``path/to/net.py:Net``), or a module path and a name (``mypackage.models:build``).
The name is an ``nn.Module``, a Module class taking no arguments, or a function returning one."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import torch

from convlens.cli.options import UsageError


def load_model(target: str) -> torch.nn.Module:
    """The model ``target`` names, built with random weights (a torchvision model on meta: nothing
    is downloaded or allocated). Every mistake is a UsageError naming the target and the rule."""
    import torchvision

    if ":" not in target:
        if target not in torchvision.models.list_models():
            raise UsageError(
                f"unknown model {target!r}: give a torchvision model name (torchvision.models.list_models()), "
                f"or path/to/file.py:NAME or package.module:NAME for your own"
            )
        with torch.device("meta"):  # shapes only: no memory for weights
            return torchvision.models.get_model(target, weights=None)
    where, _, name = target.rpartition(":")
    if not where or not name.isidentifier():
        raise UsageError(f"{target!r}: give path/to/file.py:NAME or package.module:NAME, NAME a Python name")
    namespace = load_file(where, target) if where.endswith(".py") else load_module(where, target)
    if not hasattr(namespace, name):
        found = sorted(n for n, v in vars(namespace).items() if is_model_like(v))
        raise UsageError(f"{where} has no {name!r}" + (f"; models in it: {', '.join(found)}" if found else ""))
    return build(getattr(namespace, name), target)


def load_file(path_text: str, target: str) -> object:
    path = Path(path_text)
    if not path.is_file():
        raise UsageError(f"{target!r}: no file {path}")
    spec = importlib.util.spec_from_file_location(f"convlens_target_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.resolve().parent))  # its own imports of files beside it
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise UsageError(f"{target!r}: running {path} failed: {type(error).__name__}: {error}") from error
    finally:
        sys.path.remove(str(path.resolve().parent))
    return module


def load_module(dotted: str, target: str) -> object:
    try:
        return importlib.import_module(dotted)
    except ImportError as error:
        raise UsageError(f"{target!r}: cannot import {dotted}: {error}") from error
    except Exception as error:
        raise UsageError(f"{target!r}: importing {dotted} failed: {type(error).__name__}: {error}") from error


def is_model_like(value: object) -> bool:
    return isinstance(value, torch.nn.Module) or (isinstance(value, type) and issubclass(value, torch.nn.Module))


def build(value: object, target: str) -> torch.nn.Module:
    """The module itself, or what calling the class or function with no arguments gives."""
    if isinstance(value, torch.nn.Module):
        return value
    if not callable(value):
        raise UsageError(f"{target!r} is a {type(value).__name__}, not an nn.Module or a function returning one")
    try:
        model = value()
    except Exception as error:
        raise UsageError(f"{target!r}: calling it with no arguments failed: {type(error).__name__}: {error}") from error
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"{target!r} returned a {type(model).__name__}, not an nn.Module")
    return model
