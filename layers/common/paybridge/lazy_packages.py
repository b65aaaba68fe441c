"""Packages whose `__init__` only re-exports its submodules' names, loaded name by name instead of all at once.

Powertools' `aws_lambda_powertools.event_handler` imports every resolver it has (AppSync and its asyncio, Bedrock
agents, VPC Lattice, ALB, Function URLs …) and `aws_lambda_powertools.utilities.data_classes` every event class (S3,
Kinesis, Cognito, Config rules …); the HTTP handlers use one resolver and the API Gateway events. `lazy` puts the
package in `sys.modules` without running its `__init__`, with the names that `__init__` would have imported mapped
to their submodules (read from its source) and imported on first use (PEP 562 `__getattr__`); submodules import as
usual. A package whose `__init__` does anything but import and list names is imported normally.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from types import ModuleType
from typing import Any


def lazy(name: str) -> ModuleType:
    """The package `name`, its `__init__` deferred name by name (or imported as usual when it does more)."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None or spec.submodule_search_locations is None:
        return importlib.import_module(name)
    exports = _exports(name, spec.origin)
    if exports is None:
        return importlib.import_module(name)
    module = importlib.util.module_from_spec(spec)

    def __getattr__(attr: str) -> Any:
        if attr not in exports:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        source, original = exports[attr]
        value = getattr(importlib.import_module(source), original)
        setattr(module, attr, value)
        return value

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    module.__all__ = list(exports)  # type: ignore[attr-defined]
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(importlib.import_module(parent), child, module)
    return module


def _exports(package: str, path: str) -> dict[str, tuple[str, str]] | None:
    """{name: (module, name in it)} of an `__init__` made of a docstring, `from … import …` and `__all__` only."""
    with open(path, encoding="utf-8") as source:
        tree = ast.parse(source.read(), path)
    exports: dict[str, tuple[str, str]] = {}
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue  # the docstring
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "__future__":
                continue
            for alias in node.names:
                if alias.name == "*":
                    return None
                exports[alias.asname or alias.name] = (node.module, alias.name)
            continue
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            module = f"{base}.{node.module}" if node.module else base
            for alias in node.names:
                if alias.name == "*" or not node.module:
                    return None
                exports[alias.asname or alias.name] = (module, alias.name)
            continue
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if all(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                continue
        return None
    return exports
