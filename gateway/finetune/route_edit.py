"""Edit one route in the operator's policy file as text, so their comments and layout survive.

Loading and dumping YAML would drop every comment; instead the route's nodes are located with
``yaml.compose`` (line and column marks) and only the lines that change are touched: a ``shadow:`` line
inserted as the route's first key, and ``economics.upfront_usd``'s value replaced where it stands. A
route written in flow style (``support: {...}``), one that already has a shadow, or one without an
economics block for the cost is left alone and the caller says what to add by hand. Every edit is
checked by loading the whole policy directory from a copy before the file is replaced.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import yaml

from policies import PolicyLoadError, PolicySet, load_policies


class RouteEditError(ValueError):
    """The route cannot be edited safely as text; the message says what to change by hand."""


def _mapping_value(node: yaml.Node, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for key_node, value in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            return key_node, value
    return None


def _route_node(path: Path, route: str) -> yaml.MappingNode | None:
    root = yaml.compose(path.read_text(encoding="utf-8"))
    routes = _mapping_value(root, "routes") if root is not None else None
    found = _mapping_value(routes[1], route) if routes is not None else None
    if found is None:
        return None
    node = found[1]
    if not isinstance(node, yaml.MappingNode) or node.flow_style:
        raise RouteEditError(f"{path}: routes.{route} is not a block mapping; edit it by hand")
    return node


def _policy_files(policies: Path) -> list[Path]:
    return sorted(p for p in policies.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def _edited(lines: list[str], node: yaml.MappingNode, route: str, target: str, share: float,
            upfront_usd: float | None) -> list[str]:
    if _mapping_value(node, "shadow") is not None:
        raise RouteEditError(f"routes.{route} already has a shadow; point it at {target} by hand")
    changed = list(lines)
    if upfront_usd is not None:
        economics = _mapping_value(node, "economics")
        upfront = _mapping_value(economics[1], "upfront_usd") if economics is not None else None
        if upfront is None or not isinstance(upfront[1], yaml.ScalarNode):
            raise RouteEditError(f"routes.{route} has no economics.upfront_usd to set; add the block by hand")
        value = upfront[1]
        row = value.start_mark.line
        changed[row] = (changed[row][:value.start_mark.column] + f"{upfront_usd:.2f}"
                        + changed[row][value.end_mark.column:])
    first = node.value[0][0]
    indent = " " * first.start_mark.column
    changed.insert(first.start_mark.line, f"{indent}shadow: {{target: {target}, share: {share:g}}}  "
                                          "# the fine-tuned candidate, off the client's path\n")
    return changed


def edit_route(policies: Path, route: str, target: str, share: float, upfront_usd: float | None,
               check: Callable[[PolicySet], bool], extra: dict[str, str]) -> Path:
    """Add the shadow (and the upfront cost) to ``route`` where it is defined; the file changed.

    ``extra`` are new files (name -> text) the edit needs, such as the candidate target's; ``check`` must
    accept the policies loaded from a copy with everything applied, or nothing is written.
    """
    for path in _policy_files(policies):
        node = _route_node(path, route)
        if node is None:
            continue
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        text = "".join(_edited(lines, node, route, target, share, upfront_usd))
        with tempfile.TemporaryDirectory() as scratch:
            copy = Path(scratch)
            for other in _policy_files(policies):
                shutil.copy(other, copy / other.name)
            (copy / path.name).write_text(text, encoding="utf-8")
            for name, content in extra.items():
                (copy / name).write_text(content, encoding="utf-8")
            try:
                accepted = check(load_policies(copy))
            except PolicyLoadError as exc:
                raise RouteEditError(f"the edited policies do not load: {exc}") from exc
        if not accepted:
            raise RouteEditError(f"the edited routes.{route} is not what was meant; edit it by hand")
        for name, content in extra.items():
            (policies / name).write_text(content, encoding="utf-8")
        staged = path.with_name(f".{path.name}.edit")
        staged.write_text(text, encoding="utf-8")
        os.replace(staged, path)  # the gateway's reload sees the old file or the new one, never half of one
        return path
    raise RouteEditError(f"no routes.{route} in {policies}")
