"""Tests for tether._resolve: start order and dependency problems, all reported at once."""

from __future__ import annotations

import time

import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version

import tether
from tether._manifest import Manifest
from tether._resolve import DependencyError, find_cycles, resolve, shutdown_order


def m(name: str, version: str = "1.0", source: str = "", **requires: str) -> Manifest:
    return Manifest(
        name=name,
        version=Version(version),
        requires={dep: SpecifierSet(spec) for dep, spec in requires.items()},
        source=source or f"{name}/tether.toml",
    )


def problems(*manifests: Manifest) -> DependencyError:
    with pytest.raises(DependencyError) as info:
        resolve(manifests)
    return info.value


# --------------------------------------------------------------------------------------
# Order.


def test_nothing_to_resolve() -> None:
    assert resolve([]) == []
    assert shutdown_order([]) == []


def test_independent_plugins_start_alphabetically() -> None:
    assert resolve([m("c"), m("a"), m("b")]) == ["a", "b", "c"]


def test_a_chain_starts_dependencies_first() -> None:
    chain = [m("app", db=">=1"), m("db", cache=""), m("cache")]
    assert resolve(chain) == ["cache", "db", "app"]
    assert shutdown_order(chain) == ["app", "db", "cache"]


def test_a_diamond() -> None:
    #     top
    #    /   \
    # left   right
    #    \   /
    #    base
    diamond = [
        m("top", left=">=1", right=">=1"),
        m("right", base=">=1"),
        m("left", base="<2"),
        m("base", "1.5"),
    ]
    order = resolve(diamond)
    assert order == ["base", "left", "right", "top"]
    assert shutdown_order(diamond) == ["top", "right", "left", "base"]


def test_the_order_does_not_depend_on_input_order() -> None:
    manifests = [
        m("web", api=""),
        m("api", db="", auth=""),
        m("auth", db=""),
        m("db"),
        m("metrics"),
        m("zlog"),
    ]
    expected = resolve(manifests)
    assert expected == ["db", "auth", "api", "metrics", "web", "zlog"]
    for shift in range(len(manifests)):
        assert resolve(manifests[shift:] + manifests[:shift]) == expected
        assert resolve(list(reversed(manifests[shift:] + manifests[:shift]))) == expected


def test_every_dependency_starts_before_its_dependents() -> None:
    manifests = [
        m(f"p{i}", **{f"p{j}": "" for j in range(i) if (i + j) % 3 == 0}) for i in range(30)
    ]
    order = resolve(manifests)
    position = {name: i for i, name in enumerate(order)}
    for manifest in manifests:
        for dep in manifest.requires:
            assert position[dep] < position[manifest.name]


def test_version_specifiers_that_are_satisfied() -> None:
    ok = [
        m("a", b=">=1.2,<2", c="==2.*", d="~=3.1", e="!=1.0", f=""),
        m("b", "1.9.9"),
        m("c", "2.4"),
        m("d", "3.5"),
        m("e", "1.1"),
        m("f", "0.0.1"),
    ]
    assert resolve(ok)[-1] == "a"


def test_an_installed_prerelease_satisfies_a_plain_specifier() -> None:
    assert resolve([m("a", b=">=1"), m("b", "2.0rc1")]) == ["b", "a"]


# --------------------------------------------------------------------------------------
# Problems.


def test_a_missing_dependency() -> None:
    error = problems(m("app", source="plugins/app/tether.toml", db=">=2"))
    assert error.problems == (
        "missing plugin: app 1.0 requires 'db' (>=2), which is not available "
        "(from plugins/app/tether.toml)",
    )
    assert [(x.requirer.name, x.name) for x in error.missing] == [("app", "db")]
    assert isinstance(error, tether.ConfigError)
    assert isinstance(error, tether.TetherError)


def test_a_missing_dependency_without_a_specifier() -> None:
    [problem] = problems(m("app", db="")).problems
    assert "app 1.0 requires 'db', which is not available" in problem


def test_a_version_conflict_says_who_wants_what_and_what_is_there() -> None:
    error = problems(m("app", db=">=2,<3"), m("db", "1.4", source="distribution db"))
    assert error.problems == (
        "version conflict: app 1.0 requires db<3,>=2; but db 1.4 is available "
        "(from distribution db)",
    )
    [conflict] = error.conflicts
    assert conflict.provider.name == "db"
    assert [r.name for r in conflict.requirers] == ["app"]


def test_conflicting_requirements_from_several_plugins() -> None:
    error = problems(
        m("a", shared=">=2"),
        m("b", shared="<1"),
        m("c", shared="==1.5"),  # satisfied: not part of the conflict
        m("shared", "1.5"),
    )
    [problem] = error.problems
    assert problem == (
        "version conflict: a 1.0 requires shared>=2; b 1.0 requires shared<1; "
        "but shared 1.5 is available (from shared/tether.toml)"
    )


def test_a_plugin_provided_twice() -> None:
    error = problems(m("a", "1.0", source="x/tether.toml"), m("a", "2.0", source="dist a"))
    assert error.problems == (
        "plugin 'a' is provided more than once: 1.0 (from x/tether.toml), 2.0 (from dist a)",
    )


@pytest.mark.parametrize(
    ("manifests", "cycle"),
    [
        ([m("a", a="")], "a -> a"),
        ([m("a", b=""), m("b", a="")], "a -> b -> a"),
        ([m("b", c=""), m("c", a=""), m("a", b="")], "a -> b -> c -> a"),
    ],
)
def test_cycles_of_length_one_to_three(manifests: list[Manifest], cycle: str) -> None:
    error = problems(*manifests)
    assert error.problems == (f"dependency cycle: {cycle}",)
    assert error.cycles == (tuple(cycle.split(" -> ")),)


def test_every_cycle_is_reported() -> None:
    # a <-> b and b <-> c share b (one strongly connected component, two cycles);
    # x -> y -> z -> x is separate; ok depends on a cycle but is not in one.
    error = problems(
        m("a", b=""),
        m("b", a="", c=""),
        m("c", b=""),
        m("x", y=""),
        m("y", z=""),
        m("z", x=""),
        m("ok", x=""),
    )
    assert [" -> ".join(c) for c in error.cycles] == [
        "a -> b -> a",
        "b -> c -> b",
        "x -> y -> z -> x",
    ]


def test_all_kinds_of_problem_together() -> None:
    error = problems(
        m("app", db=">=2", auth="", queue=""),
        m("db", "1.0"),
        m("auth", session=""),
        m("session", auth=""),
        m("dup", "1"),
        m("dup", "2"),
    )
    message = str(error)
    header, *lines = message.splitlines()
    assert header == "cannot start plugins, 4 problems with their dependencies:"
    assert lines == [
        "  - plugin 'dup' is provided more than once: 1 (from dup/tether.toml), "
        "2 (from dup/tether.toml)",
        "  - missing plugin: app 1.0 requires 'queue', which is not available "
        "(from app/tether.toml)",
        "  - version conflict: app 1.0 requires db>=2; but db 1.0 is available "
        "(from db/tether.toml)",
        "  - dependency cycle: auth -> session -> auth",
    ]


def test_one_problem_is_singular() -> None:
    assert str(problems(m("a", a=""))).startswith("cannot start plugins, 1 problem with")


# --------------------------------------------------------------------------------------
# find_cycles on its own.


def test_find_cycles_on_a_complete_graph_is_capped() -> None:
    names = [f"n{i}" for i in range(8)]
    graph = {a: [b for b in names if b != a] for a in names}
    assert len(find_cycles(graph, limit=20)) == 20


def test_find_cycles_is_linear_on_a_dag_with_many_paths() -> None:
    # 40 layers of two nodes each, every node linked to both of the next layer: 2**40 paths.
    graph = {
        f"{layer}{side}": [f"{layer + 1}a", f"{layer + 1}b"] for layer in range(40) for side in "ab"
    }
    graph.update({"40a": [], "40b": []})
    started = time.perf_counter()
    assert find_cycles(graph) == []
    assert time.perf_counter() - started < 1.0


def test_find_cycles_ignores_edges_to_unknown_nodes() -> None:
    assert find_cycles({"a": ["ghost"], "b": ["b"]}) == [["b", "b"]]
