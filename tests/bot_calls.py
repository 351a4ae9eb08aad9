"""What the bot's code asks of GitHub, read from its source (no bot code runs).

* :func:`rest_calls`: every REST request the code can make.  A call of a gidgethub method
  (``getitem``/``getiter``/``getstatus``; ``post``/``patch``/``put``/``delete``/``get`` when the URL
  is a GitHub path) whose URL is a string literal, a module constant or an f-string (parts that
  name another string assigned in the same module, like ``self._repo_path``, are expanded) is
  matched to a path template and method of GitHub's OpenAPI description, giving its operationId.
  A gidgethub call whose URL cannot be read, or a GitHub-looking path the description lacks, is
  reported in ``problems``: a new kind of call must not slip past the permission check.
* :func:`token_permission_requests`: the levels the code asks for in the ``permissions`` of
  installation token requests (``{"permissions": {"contents": contents}}``), following a level
  passed down as a parameter to the call sites that give it as a literal.
"""

from __future__ import annotations

import ast
import functools
import re
from dataclasses import dataclass, field
from pathlib import Path

from tests.github_emulator.openapi import load_description

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted(p for top in ("bot", "handlers") for p in (ROOT / top).rglob("*.py"))

GIDGETHUB_ONLY = {"getitem": "GET", "getiter": "GET", "getstatus": "GET"}
HTTP_VERBS = {"get": "GET", "post": "POST", "patch": "PATCH", "put": "PUT", "delete": "DELETE"}
GITHUB_PREFIXES = ("/repos/", "/app", "/user", "/installation", "/orgs/", "/users/", "/rate_limit")
LEVELS = {"read", "write", "admin"}


@dataclass(frozen=True)
class RestCall:
    method: str
    template: str  # the description's path template
    operation_id: str
    where: str  # path:line


@dataclass
class Found:
    calls: list[RestCall] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _modules(sources: tuple[Path, ...]) -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(), str(path)) for path in sources}


def _where(path: Path, node: ast.AST) -> str:
    return f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{node.lineno}"


def _string_assignments(tree: ast.Module) -> dict[str, ast.expr]:
    """``NAME = "…"`` and ``self.attr = f"…"`` of a module, by the target's source text."""
    found: dict[str, ast.expr] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant | ast.JoinedStr):
            for target in node.targets:
                found[ast.unparse(target)] = node.value
    return found


def _render(node: ast.expr, names: dict[str, ast.expr], depth: int = 0) -> str | None:
    """The string ``node`` builds, with ``{}`` for each value the code fills in (None: unknown)."""
    if depth > 5:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name | ast.Attribute) and ast.unparse(node) in names:
        return _render(names[ast.unparse(node)], names, depth + 1)
    if not isinstance(node, ast.JoinedStr):
        return None
    parts = []
    for i, part in enumerate(node.values):
        if isinstance(part, ast.Constant):
            parts.append(str(part.value))
            continue
        source = ast.unparse(part.value)
        expanded = _render(part.value, names, depth + 1) if source in names else None
        if expanded is not None:
            parts.append(expanded)
        elif i == 0 and "url" in source.lower():
            parts.append("")  # the API's base URL (settings.api_url)
        else:
            parts.append("{}")
    return "".join(parts)


def _segments(path: str) -> list[str]:
    """Path segments with every ``{…}`` (``{+path}``, ``{}``) as ``{}``; query and ``{?…}`` dropped."""
    path = re.sub(r"\{\?[^}]*\}", "", path).split("?", 1)[0]
    return [re.sub(r"^\{[^}]*\}$", "{}", s) for s in path.strip("/").split("/")]


def _templates() -> dict[tuple[str, ...], list[str]]:
    by_shape: dict[tuple[str, ...], list[str]] = {}
    for template in load_description()["paths"]:
        by_shape.setdefault(tuple(_segments(template)), []).append(template)
    return by_shape


def _match(method: str, path: str, templates: dict[tuple[str, ...], list[str]]) -> tuple[str, str] | None:
    paths = load_description()["paths"]
    for template in templates.get(tuple(_segments(path)), []):
        op = paths[template].get(method.lower())
        if op is not None:
            return template, op["operationId"]
    return None


def rest_calls(sources: list[Path] = SOURCES) -> Found:
    return _rest_calls(tuple(sources))


@functools.cache
def _rest_calls(sources: tuple[Path, ...]) -> Found:
    found, templates = Found(), _templates()
    for path, tree in _modules(sources).items():
        names = _string_assignments(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            verb = node.func.attr
            method = GIDGETHUB_ONLY.get(verb) or HTTP_VERBS.get(verb)
            url = node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "url"), None)
            if method is None or url is None:
                continue
            rendered = _render(url, names)
            if rendered is None or not rendered.startswith("/"):
                if verb in GIDGETHUB_ONLY:
                    found.problems.append(f"{_where(path, node)}: cannot tell which GitHub path "
                                          f"{verb}({ast.unparse(url)}) requests")
                continue
            matched = _match(method, rendered, templates)
            if matched:
                found.calls.append(RestCall(method, matched[0], matched[1], _where(path, node)))
            elif verb in GIDGETHUB_ONLY or rendered.startswith(GITHUB_PREFIXES):
                found.problems.append(f"{_where(path, node)}: {method} {rendered} is no operation of "
                                      "GitHub's REST description")
    return found


def _functions(modules: dict[Path, ast.Module]) -> list[tuple[Path, ast.FunctionDef | ast.AsyncFunctionDef]]:
    return [(path, node) for path, tree in modules.items() for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]


def _parameters(function: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    names = [a.arg for a in function.args.posonlyargs + function.args.args]
    return names[1:] if names[:1] == ["self"] else names


def _argument(call: ast.Call, index: int, name: str) -> ast.expr | None:
    if index < len(call.args):
        return call.args[index]
    return next((k.value for k in call.keywords if k.arg == name), None)


def _called_name(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def token_permission_requests(sources: list[Path] = SOURCES) -> tuple[dict[str, dict[str, list[str]]], list[str]]:
    """``{permission: {level: [where…]}}`` the code requests for tokens, and what it could not resolve."""
    return _token_permission_requests(tuple(sources))


@functools.cache
def _token_permission_requests(sources: tuple[Path, ...]) -> tuple[dict[str, dict[str, list[str]]], list[str]]:
    modules = _modules(sources)
    functions = _functions(modules)
    enclosing = {id(n): (path, f) for path, f in functions for n in ast.walk(f)}
    calls = [(path, node) for path, tree in modules.items() for node in ast.walk(tree) if isinstance(node, ast.Call)]
    requested: dict[str, dict[str, list[str]]] = {}
    problems: list[str] = []

    def resolve(permission: str, value: ast.expr, path: Path, depth: int = 0) -> None:
        if isinstance(value, ast.Constant) and value.value in LEVELS:
            requested.setdefault(permission, {}).setdefault(value.value, []).append(_where(path, value))
            return
        path_and_function = enclosing.get(id(value))
        function = path_and_function[1] if path_and_function else None
        if depth > 5 or not isinstance(value, ast.Name) or function is None or value.id not in _parameters(function):
            problems.append(f"{_where(path, value)}: cannot tell the {permission} level {ast.unparse(value)}")
            return
        index = _parameters(function).index(value.id)
        callers = [(p, c) for p, c in calls if _called_name(c) == function.name
                   and enclosing.get(id(c), (None, None))[1] is not function]  # not its own inner calls
        passed = [(p, a) for p, c in callers if (a := _argument(c, index, value.id)) is not None]
        if not passed:
            problems.append(f"{_where(path, value)}: nothing calls {function.name}() with a {permission} level")
        for caller_path, argument in passed:
            resolve(permission, argument, caller_path, depth + 1)

    for path, tree in modules.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Dict):
                continue
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "permissions" and isinstance(value, ast.Dict):
                    for name, level in zip(value.keys, value.values, strict=True):
                        if isinstance(name, ast.Constant):
                            resolve(name.value, level, path)
    return requested, problems
