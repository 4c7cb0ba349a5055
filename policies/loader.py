"""Load a policy directory: parse YAML, validate, cross-check, fail early and precisely.

Every problem is reported as ``file:line: yaml.path: message`` so an operator
can jump straight to it; all problems of a directory are collected before
raising, not just the first.

Files a policy names (a route's classifier model) are checked through a
``ModelCheck`` the caller passes: loading a model is the routes layer's job,
and a set that names an unloadable file must fail here, at ``policy check``,
start or reload, not on every request once it is live.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from policies.providers import fine_tuned_arm_error, fine_tuned_arm_warning
from policies.schema import ARM_NAMES, Experiment, PolicyFile, PolicySet, Route, Target
from policies.yaml_lines import Location, YamlDocument, YamlProblem, dotted, read_yaml

# The shipped policy directory: what serve, eval and the router CLI read unless told otherwise.
DEFAULT_POLICIES = Path(__file__).resolve().parent / "default"

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_EXPANDED_TARGET_KEYS = ("api_base", "model")
#: ``(classifier.model, policy directory)`` -> why that model cannot be loaded, or None when it can.
ModelCheck = Callable[[str, Path], str | None]


@dataclass(frozen=True)
class PolicyIssue:
    file: str
    line: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PolicyLoadError(Exception):
    """A policy directory failed to load; ``issues`` lists every problem found."""

    def __init__(self, issues: list[PolicyIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(issue) for issue in issues))


@dataclass
class _Parsed:
    file: str
    data: dict[str, Any]
    document: YamlDocument

    def line_of(self, loc: Iterable[str | int]) -> int:
        """The line of the deepest YAML node on ``loc``'s path."""
        return self.document.line_of(loc)


def _parse(path: Path, display: str) -> _Parsed:
    try:
        document = read_yaml(path.read_text(encoding="utf-8"))
    except YamlProblem as exc:
        raise PolicyLoadError([PolicyIssue(display, exc.line, exc.path, exc.message)]) from exc
    data = document.data if document.data is not None else {}
    if not isinstance(data, dict):
        raise PolicyLoadError([PolicyIssue(display, 1, "", "the file must be a mapping with 'targets' and/or 'routes'")])
    return _Parsed(display, data, document)


def _expand_env(value: str) -> str:
    """Expand ``${VAR}`` and ``${VAR:-default}``; used for deployment-specific URLs."""
    return _ENV_REF.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)


def _expand_targets(data: dict[str, Any]) -> None:
    targets = data.get("targets")
    if not isinstance(targets, dict):
        return
    for spec in targets.values():
        if isinstance(spec, dict):
            for key in _EXPANDED_TARGET_KEYS:
                if isinstance(spec.get(key), str):
                    spec[key] = _expand_env(spec[key])


def _validate(parsed: _Parsed) -> tuple[PolicyFile | None, list[PolicyIssue]]:
    _expand_targets(parsed.data)
    try:
        return PolicyFile.model_validate(parsed.data), []
    except ValidationError as exc:
        issues = [
            PolicyIssue(parsed.file, parsed.line_of(err["loc"]), dotted(err["loc"]), err["msg"])
            for err in exc.errors(include_url=False)
        ]
        return None, issues


def _policy_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def fingerprint(directory: Path) -> str:
    """A digest of the directory's policy files; changes whenever any file does."""
    digest = hashlib.sha256()
    for path in _policy_files(directory):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class _Merger:
    """Merges validated files and checks the references between them."""

    SECTIONS = ("targets", "routes", "experiments")

    def __init__(self, directory: Path, check_model: ModelCheck | None) -> None:
        self.directory = directory
        self.check_model = check_model
        self.targets: dict[str, Target] = {}
        self.routes: dict[str, Route] = {}
        self.experiments: dict[str, Experiment] = {}
        self.origin: dict[tuple[str, str], tuple[_Parsed, Location]] = {}
        self.issues: list[PolicyIssue] = []
        self.warnings: list[PolicyIssue] = []

    def add(self, parsed: _Parsed, policy: PolicyFile) -> None:
        for section in self.SECTIONS:
            store: dict[str, Any] = getattr(self, section)
            for name, item in getattr(policy, section).items():
                loc: Location = (section, name)
                if name in store:
                    first, _ = self.origin[(section, name)]
                    self._issue(parsed, loc, f"{section[:-1]} {name!r} is already defined in {first.file}")
                    continue
                store[name] = item
                self.origin[(section, name)] = (parsed, loc)

    def _issue(self, parsed: _Parsed, loc: Location, message: str) -> None:
        self.issues.append(PolicyIssue(parsed.file, parsed.line_of(loc), dotted(loc), message))

    def _target(self, parsed: _Parsed, loc: Location, name: str) -> None:
        if name not in self.targets:
            known = ", ".join(sorted(self.targets)) or "none"
            self._issue(parsed, loc, f"unknown target {name!r} (known targets: {known})")

    def _arm(self, parsed: _Parsed, loc: Location, route: Route, arm: str) -> None:
        if getattr(route.arms, arm) is None:
            self._issue(parsed, loc, f"the route has no {arm} arm")

    def check(self) -> None:
        for name, target in self.targets.items():
            parsed, loc = self.origin[("targets", name)]
            if target.without_key is not None:
                self._target(parsed, (*loc, "without_key"), target.without_key)
                if target.api_key_env is None:
                    self._issue(parsed, (*loc, "without_key"), "needs api_key_env: it applies while that variable is unset")
            if name in self.routes and target.expose:
                self._issue(parsed, (*loc, "expose"), f"an exposed target cannot share the route name {name!r}")
        for name, route in self.routes.items():
            self._check_route(name, route)
        routes_in_experiments: dict[str, str] = {}
        for name, experiment in self.experiments.items():
            self._check_experiment(name, experiment, routes_in_experiments)

    def _check_route(self, name: str, route: Route) -> None:
        parsed, loc = self.origin[("routes", name)]
        for arm_name in ARM_NAMES:
            arm = getattr(route.arms, arm_name)
            if arm is None:
                continue
            arm_loc = (*loc, "arms", arm_name)
            self._target(parsed, (*arm_loc, "target"), arm.target)
            if arm_name == "fine_tuned" and arm.target in self.targets:
                self._provider_allows_tuning(parsed, (*arm_loc, "target"), arm.target)
            for index, step in enumerate(arm.fallback.to if arm.fallback else ()):
                step_loc = (*arm_loc, "fallback", "to", index)
                if step.target is not None:
                    self._target(parsed, (*step_loc, "target"), step.target)
                elif step.arm == arm_name:
                    self._issue(parsed, (*step_loc, "arm"), "an arm cannot fall back to itself")
                elif step.arm is not None:
                    self._arm(parsed, (*step_loc, "arm"), route, step.arm)
        if route.default_arm == "fine_tuned":
            self._arm(parsed, (*loc, "default_arm"), route, "fine_tuned")
        if route.shadow is not None:
            self._target(parsed, (*loc, "shadow", "target"), route.shadow.target)
        judges = [("acceptors", route.acceptors.judge if route.acceptors else None),
                  ("ensemble", route.ensemble.judge if route.ensemble else None)]
        for block, judge in judges:
            if judge is not None:
                self._target(parsed, (*loc, block, "judge", "target"), judge.target)
        if route.strategy == "cascade" and route.default_arm == "prompted" and route.classifier is None:
            self.warnings.append(PolicyIssue(parsed.file, parsed.line_of((*loc, "strategy")), dotted((*loc, "strategy")),
                                             "the cascade starts only from the fine_tuned arm, which this route "
                                             "sends nothing to (default_arm is prompted, no classifier): only an "
                                             "experiment's variant would reach it"))
        if route.classifier is not None:
            self._arm(parsed, (*loc, "classifier"), route, "fine_tuned")
            if self.check_model and (problem := self.check_model(route.classifier.model, self.directory)):
                self._issue(parsed, (*loc, "classifier", "model"), problem)

    def _provider_allows_tuning(self, parsed: _Parsed, loc: Location, name: str) -> None:
        target = self.targets[name]
        if (error := fine_tuned_arm_error(name, target)) is not None:
            self._issue(parsed, loc, error)
        elif (warning := fine_tuned_arm_warning(name, target)) is not None:
            self.warnings.append(PolicyIssue(parsed.file, parsed.line_of(loc), dotted(loc), warning))

    def _check_experiment(self, name: str, experiment: Experiment, taken: dict[str, str]) -> None:
        parsed, loc = self.origin[("experiments", name)]
        route = self.routes.get(experiment.route)
        if route is None:
            known = ", ".join(sorted(self.routes)) or "none"
            self._issue(parsed, (*loc, "route"), f"unknown route {experiment.route!r} (known routes: {known})")
            return
        if experiment.route in taken:
            self._issue(parsed, (*loc, "route"), f"route {experiment.route!r} already has experiment "
                                                 f"{taken[experiment.route]!r}; one experiment per route")
        taken[experiment.route] = name
        for variant_name, variant in experiment.variants.items():
            variant_loc = (*loc, "variants", variant_name)
            if variant.arm is not None:
                self._arm(parsed, (*variant_loc, "arm"), route, variant.arm)
            if variant.target is not None:
                self._target(parsed, (*variant_loc, "target"), variant.target)


def _aliases(targets: dict[str, Target]) -> dict[str, str]:
    """Targets whose key variable is unset and that name a stand-in (e.g. the demo upstream)."""
    return {name: target.without_key for name, target in targets.items()
            if target.without_key and target.api_key_env and not os.environ.get(target.api_key_env)}


def load_policies(directory: str | Path, check_model: ModelCheck | None = None) -> PolicySet:
    """Load and validate every ``*.yaml`` in ``directory``; raise ``PolicyLoadError`` listing all issues.

    ``check_model`` vets each classifier model a route names (without it, models are not checked).
    """
    root = Path(directory)
    if not root.is_dir():
        raise PolicyLoadError([PolicyIssue(str(root), 0, "", "policy directory does not exist")])
    merger = _Merger(root, check_model)
    issues: list[PolicyIssue] = []
    files = 0
    for path in _policy_files(root):
        files += 1
        try:
            parsed = _parse(path, str(path))
        except PolicyLoadError as exc:
            issues.extend(exc.issues)
            continue
        policy, problems = _validate(parsed)
        issues.extend(problems)
        if policy is not None:
            merger.add(parsed, policy)
    if files == 0:
        issues.append(PolicyIssue(str(root), 0, "", "no *.yaml policy files found"))
    merger.check()
    issues.extend(merger.issues)
    if issues:
        raise PolicyLoadError(issues)
    return PolicySet(targets=merger.targets, routes=merger.routes, experiments=merger.experiments,
                     aliases=_aliases(merger.targets), fingerprint=fingerprint(root),
                     warnings=tuple(str(warning) for warning in merger.warnings))
