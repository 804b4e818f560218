"""Dependency resolution between plugins: start order, or every problem at once.

`resolve(manifests)` returns plugin names in start order, dependencies first. Among plugins
that could start next, the alphabetically first goes first, so the order depends only on
the manifests, never on discovery order.

Nothing is started when anything is wrong: `DependencyError` lists every missing plugin,
every unsatisfied version requirement (who requires what, what is available), every plugin
provided twice and every dependency cycle, written `a -> b -> c -> a`.

An available pre-release satisfies a specifier that matches it (`2.0rc1` satisfies `>=1`):
what is installed is what runs, so pip's "no pre-releases unless asked" does not apply.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ._errors import ConfigError
from ._manifest import Manifest

__all__ = [
    "Conflict",
    "DependencyError",
    "Missing",
    "find_cycles",
    "resolve",
    "shutdown_order",
]

# Enumerating cycles is exponential in the worst case; a graph with this many is broken
# enough that the first ones tell the story.
MAX_CYCLES = 20


@dataclass(frozen=True, slots=True)
class Missing:
    """`requirer` needs `name`, which no manifest provides."""

    requirer: Manifest
    name: str

    def __str__(self) -> str:
        spec = self.requirer.requires[self.name]
        wanted = f" ({spec})" if str(spec) else ""
        return (
            f"missing plugin: {self.requirer} requires {self.name!r}{wanted}, "
            f"which is not available ({_source(self.requirer)})"
        )


@dataclass(frozen=True, slots=True)
class Conflict:
    """The available `provider` does not satisfy what `requirers` ask of it."""

    provider: Manifest
    requirers: tuple[Manifest, ...]

    def __str__(self) -> str:
        asks = "; ".join(
            f"{r} requires {self.provider.name}{r.requires[self.provider.name]}"
            for r in self.requirers
        )
        return (
            f"version conflict: {asks}; but {self.provider.name} {self.provider.version} "
            f"is available ({_source(self.provider)})"
        )


class DependencyError(ConfigError):
    """The plugins' dependencies cannot be satisfied; nothing was started.

    `problems` holds one line per problem; `missing`, `conflicts`, `duplicates` and
    `cycles` hold them by kind (a cycle as its list of names, first name repeated last).
    """

    def __init__(
        self,
        missing: Sequence[Missing] = (),
        conflicts: Sequence[Conflict] = (),
        duplicates: Sequence[tuple[Manifest, ...]] = (),
        cycles: Sequence[Sequence[str]] = (),
    ) -> None:
        self.missing = tuple(missing)
        self.conflicts = tuple(conflicts)
        self.duplicates = tuple(tuple(d) for d in duplicates)
        self.cycles = tuple(tuple(c) for c in cycles)
        problems = [_describe_duplicate(d) for d in self.duplicates]
        problems += [str(m) for m in self.missing]
        problems += [str(c) for c in self.conflicts]
        problems += ["dependency cycle: " + " -> ".join(c) for c in self.cycles]
        self.problems = tuple(problems)
        count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
        super().__init__(
            f"cannot start plugins, {count} with their dependencies:\n"
            + "\n".join(f"  - {p}" for p in problems)
        )


def _source(manifest: Manifest) -> str:
    return f"from {manifest.source}" if manifest.source else "no source recorded"


def _describe_duplicate(manifests: Sequence[Manifest]) -> str:
    versions = ", ".join(f"{m.version} ({_source(m)})" for m in manifests)
    return f"plugin {manifests[0].name!r} is provided more than once: {versions}"


def _index(manifests: Iterable[Manifest]) -> tuple[dict[str, Manifest], list[tuple[Manifest, ...]]]:
    by_name: dict[str, list[Manifest]] = {}
    for manifest in manifests:
        by_name.setdefault(manifest.name, []).append(manifest)
    duplicates = [tuple(ms) for name, ms in sorted(by_name.items()) if len(ms) > 1]
    # With duplicates the first one stands in, so the other checks still run.
    return {name: ms[0] for name, ms in by_name.items()}, duplicates


def _check_requirements(
    plugins: Mapping[str, Manifest],
) -> tuple[list[Missing], list[Conflict]]:
    missing: list[Missing] = []
    unsatisfied: dict[str, list[Manifest]] = {}
    for name in sorted(plugins):
        requirer = plugins[name]
        for dep in sorted(requirer.requires):
            provider = plugins.get(dep)
            if provider is None:
                missing.append(Missing(requirer, dep))
            elif not requirer.requires[dep].contains(provider.version, prereleases=True):
                unsatisfied.setdefault(dep, []).append(requirer)
    conflicts = [Conflict(plugins[dep], tuple(rs)) for dep, rs in sorted(unsatisfied.items())]
    return missing, conflicts


def _graph(plugins: Mapping[str, Manifest]) -> dict[str, list[str]]:
    """name -> the names it depends on that exist, sorted."""
    return {
        name: sorted(dep for dep in manifest.requires if dep in plugins)
        for name, manifest in plugins.items()
    }


def _components(graph: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Tarjan's strongly connected components (iterative): name -> component number."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    component: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            successors = graph.get(node, ())
            if i < len(successors):
                work.append((node, i + 1))
                nxt = successors[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                number = len(set(component.values()))
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component[member] = number
                    if member == node:
                        break
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return component


def find_cycles(graph: Mapping[str, Sequence[str]], limit: int = MAX_CYCLES) -> list[list[str]]:
    """Every elementary cycle of `graph` (up to `limit`), each starting at its smallest name.

    A cycle is found from its smallest member only (the search from `start` visits only
    names that sort after it), and only inside `start`'s strongly connected component, so
    an acyclic graph costs one linear pass however many paths it has.
    """
    component = _components(graph)
    cycles: list[list[str]] = []
    for start in sorted(graph):
        stack: list[tuple[str, int]] = [(start, 0)]
        path = [start]
        on_path = {start}
        while stack and len(cycles) < limit:
            node, i = stack[-1]
            successors = graph.get(node, ())
            if i == len(successors):
                stack.pop()
                on_path.discard(path.pop())
                continue
            stack[-1] = (node, i + 1)
            nxt = successors[i]
            if nxt == start:
                cycles.append([*path, start])
            elif nxt > start and nxt not in on_path and component.get(nxt) == component[start]:
                stack.append((nxt, 0))
                path.append(nxt)
                on_path.add(nxt)
    return cycles


def _topological(graph: Mapping[str, Sequence[str]]) -> list[str]:
    """Kahn's algorithm, smallest ready name first. Assumes no cycles."""
    waiting = {name: len(deps) for name, deps in graph.items()}
    dependents: dict[str, list[str]] = {name: [] for name in graph}
    for name, deps in graph.items():
        for dep in deps:
            dependents[dep].append(name)
    ready = [name for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for dependent in dependents[name]:
            waiting[dependent] -= 1
            if waiting[dependent] == 0:
                heapq.heappush(ready, dependent)
    return order


def resolve(manifests: Iterable[Manifest]) -> list[str]:
    """Plugin names in start order (dependencies first), or `DependencyError` with every
    problem found."""
    plugins, duplicates = _index(manifests)
    missing, conflicts = _check_requirements(plugins)
    graph = _graph(plugins)
    cycles = find_cycles(graph)
    if duplicates or missing or conflicts or cycles:
        raise DependencyError(missing, conflicts, duplicates, cycles)
    return _topological(graph)


def shutdown_order(manifests: Iterable[Manifest]) -> list[str]:
    """Plugin names in stop order: dependents before what they depend on."""
    return resolve(manifests)[::-1]
