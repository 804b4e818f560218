"""The plugin manager's YAML configuration: pydantic models, loading and error reports.

`load_config(path)` reads one YAML file and returns a validated `ManagerConfig`. Every
problem in the file is reported at once, one line each, naming the file, the line, the
dotted field path, the value found and what was expected::

    plugin-config.yaml:12: plugins.calc.instances: got -1, expected an integer >= 1

Environment variables are expanded in string values (never in keys) before validation:

- `${VAR}` is the value of `VAR`; an unset `VAR` is an error;
- `${VAR:-default}` is `default` when `VAR` is unset or empty (as in a POSIX shell);
- `$$` is a literal `$`; a `$` not followed by `{` or `$` is left as it is.

Expansion happens after YAML parsing, so a variable's value is never parsed as YAML: it is
a string, which pydantic then converts where a number or boolean is expected.

Relative paths (discovery paths, TLS files, `cwd`, `verify_path`) are relative to the
directory of the configuration file, so a configuration means the same thing whatever
directory the host is started from.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import math
import os
import re
import shutil
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from ._errors import ConfigError
from ._handshake import HandshakeConfig

__all__ = [
    "DEFAULT_ENV_ALLOW",
    "DEFAULT_ENTRY_POINT_GROUP",
    "CalculatorSettings",
    "ConfigFileError",
    "DiscoverySettings",
    "HandshakeSettings",
    "HealthSettings",
    "ManagerConfig",
    "PluginSettings",
    "PluginName",
    "Problem",
    "RestartPolicy",
    "SecuritySettings",
    "TLSFiles",
    "expand_env",
    "format_problems",
    "load_config",
    "problems_from_validation",
    "validate_plugin_name",
]

DEFAULT_ENTRY_POINT_GROUP = "tether.plugins"

# What a plugin inherits from the host's environment unless its `env_allow` says otherwise:
# enough for a program (and a Python interpreter) to run and format text, nothing that tends
# to hold secrets. Handshake variables are added by the launcher on top of this.
DEFAULT_ENV_ALLOW: tuple[str, ...] = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_*",
    "TZ",
    "TMPDIR",
)

_PLUGIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ENV_PATTERN = re.compile(r"[A-Za-z0-9_*?\[\]!]+\Z")
# The object reference syntax of `importlib.metadata.EntryPoint.value`.
_ENTRY_POINT = re.compile(r"[\w.]+(\s*:\s*[\w.]+)?\Z")
_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}\Z")


# --------------------------------------------------------------------------------------
# Problems: one per thing wrong, rendered as one line each.


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a file: where, what was found, what was expected."""

    path: tuple[str | int, ...]
    value: Any
    expected: str
    line: int | None = None
    # The full sentence, for problems that do not fit "got X, expected Y" (unknown fields).
    text: str | None = None

    @property
    def dotted(self) -> str:
        return _dotted(self.path)

    def render(self, source: str | None = None) -> str:
        where = source or ""
        if where and self.line is not None:
            where = f"{where}:{self.line}"
        body = self.text or f"got {show_value(self.value)}, expected {self.expected}"
        field = self.dotted or "(top level)"
        return f"{where}: {field}: {body}" if where else f"{field}: {body}"


class ConfigFileError(ConfigError):
    """A configuration or manifest file is invalid; `problems` lists everything wrong."""

    def __init__(self, source: str, problems: Sequence[Problem], what: str = "configuration"):
        super().__init__(format_problems(problems, source, what))
        self.source = source
        self.problems = tuple(problems)


class _Problems(ValueError):
    """Raised by validators to report problems below the field being validated.

    pydantic can only attach a validator's error to the validated field itself; this carries
    the sub-paths, so a cross-field rule still names the exact field and value.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        super().__init__("; ".join(p.render() for p in problems))
        self.problems = tuple(problems)


def _dotted(path: Sequence[str | int]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += f".{part}"
        else:
            out = str(part)
    return out


def show_value(value: Any) -> str:
    """A value as the YAML/TOML author wrote it (null, true, "text"), kept short."""
    if value is MISSING:
        return "nothing"
    if isinstance(value, Path):
        value = str(value)
    try:
        text = json.dumps(value, default=str, allow_nan=False)
    except ValueError:  # inf or NaN somewhere: YAML allows them (.inf), JSON does not
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def format_problems(problems: Sequence[Problem], source: str, what: str = "configuration") -> str:
    """The message of a `ConfigFileError`: a header, then one line per problem."""
    count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
    lines = [f"invalid {what} {source}: {count}"]
    lines.extend("  " + p.render(source) for p in problems)
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# Turning pydantic's errors into problems.

_TYPE_TEXT: dict[str, str] = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "tuple_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "path_type": "a path (a string)",
    "missing": "a value (this field is required)",
}
_COMPARISONS = {
    "greater_than": ("gt", ">"),
    "greater_than_equal": ("ge", ">="),
    "less_than": ("lt", "<"),
    "less_than_equal": ("le", "<="),
}


def _expected(error: ErrorDetails) -> str:
    kind = error["type"]
    ctx = error.get("ctx", {})
    if kind in _TYPE_TEXT:
        return _TYPE_TEXT[kind]
    if kind in _COMPARISONS:
        key, op = _COMPARISONS[kind]
        bound = ctx[key]
        # Bounds are written as ints on int fields and floats on float fields.
        noun = "an integer" if isinstance(bound, int) else "a number"
        return f"{noun} {op} {bound:g}" if isinstance(bound, float) else f"{noun} {op} {bound}"
    if kind == "literal_error":
        return f"one of {ctx['expected']}"
    if kind == "too_short":
        n = ctx["min_length"]
        return f"at least {n} item" + ("s" if n != 1 else "")
    if kind == "string_too_short":
        return "a non-empty string"
    if kind == "value_error":
        return str(ctx["error"])
    return error["msg"][:1].lower() + error["msg"][1:]


def _unwrap(tp: Any) -> Any:
    """The type inside `Annotated[...]` and `X | None`."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin is Union or origin is types.UnionType:
            args = [a for a in get_args(tp) if a is not type(None)]
            if len(args) != 1:
                return tp
            tp = args[0]
        else:
            return tp


def _fields_at(root: type[BaseModel], loc: Sequence[str | int]) -> list[str] | None:
    """The field names of the model found at `loc`, for did-you-mean suggestions."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        origin = get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = field.annotation
        elif origin in (dict, Mapping):
            tp = get_args(tp)[1]
        elif origin in (list, tuple, Sequence):
            tp = get_args(tp)[0]
        else:
            return None
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return list(tp.model_fields)
    return None


def _unknown_field(root: type[BaseModel], loc: tuple[str | int, ...], value: Any) -> Problem:
    name = str(loc[-1])
    known = _fields_at(root, loc[:-1]) or []
    text = f"unknown field (got {show_value(value)})"
    if known:
        text += "; expected one of: " + ", ".join(known)
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        text += f"; did you mean {close[0]!r}?"
    return Problem(loc, value, "a known field", text=text)


def problems_from_validation(
    exc: ValidationError,
    root: type[BaseModel],
    lines: Mapping[tuple[str | int, ...], int] | None = None,
    data: Any = None,
) -> list[Problem]:
    """One `Problem` per pydantic error, with line numbers from `lines` where known.

    `data` is the validated input: values in cross-field problems are shown from it, as
    written, rather than converted (`5`, not `5.0`).
    """
    problems: list[Problem] = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        if loc and loc[-1] == "[key]":
            # A dict key failed: pydantic appends a marker; the key is the value.
            loc = loc[:-1]
        ctx = error.get("ctx", {})
        inner = ctx.get("error")
        if isinstance(inner, _Problems):
            problems.extend(
                _as_written(Problem(loc + p.path, p.value, p.expected, text=p.text), data)
                for p in inner.problems
            )
        elif error["type"] == "extra_forbidden":
            problems.append(_unknown_field(root, loc, error["input"]))
        else:
            value = MISSING if error["type"] == "missing" else error["input"]
            problems.append(Problem(loc, value, _expected(error)))
    return [_with_line(p, lines or {}) for p in problems]


def _with_line(problem: Problem, lines: Mapping[tuple[str | int, ...], int]) -> Problem:
    # The deepest part of the path the file has: a missing field points at its parent.
    for end in range(len(problem.path), -1, -1):
        line = lines.get(problem.path[:end])
        if line is not None:
            return Problem(problem.path, problem.value, problem.expected, line, problem.text)
    return problem


# --------------------------------------------------------------------------------------
# Field types and small validators.


def validate_plugin_name(name: object) -> str | None:
    """None if `name` is a valid plugin name, else what was expected."""
    if isinstance(name, str) and _PLUGIN_NAME.match(name):
        return None
    return "a plugin name: letters, digits, '_', '.' or '-', starting with a letter or digit"


def _plugin_name(value: str) -> str:
    expected = validate_plugin_name(value)
    if expected is not None:
        raise ValueError(expected)
    return value


def _relative_to_config(value: Path, info: ValidationInfo) -> Path:
    value = value.expanduser()
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        return Path(base) / value
    return value


def _existing_file(value: Path) -> Path:
    if not value.is_file():
        raise ValueError(f"an existing file ({value} does not exist or is not a file)")
    return value


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("a non-empty string")
    return value


def _checksum(value: str) -> str:
    text = value.strip().removeprefix("sha256:")
    if not _SHA256_HEX.match(text):
        raise ValueError("a sha256 digest: 64 hex digits, optionally prefixed with 'sha256:'")
    return text.lower()


def _entry_point(value: str) -> str:
    if not _ENTRY_POINT.match(value.strip()):
        raise ValueError("an entry point reference 'package.module:object'")
    return value.strip()


def _env_name(value: str) -> str:
    if not _ENV_NAME.match(value):
        raise ValueError("an environment variable name (letters, digits and '_')")
    return value


def _env_pattern(value: str) -> str:
    if not _ENV_PATTERN.match(value):
        raise ValueError("an environment variable name or a glob pattern such as 'LC_*'")
    return value


def _public_key(value: str) -> str:
    # Imported here: the signing module pulls in `cryptography`, needed only if keys are used.
    from ._signing import parse_public_key

    parse_public_key(value)
    return value.strip()


ConfigPath = Annotated[Path, AfterValidator(_relative_to_config)]
ExistingFile = Annotated[Path, AfterValidator(_relative_to_config), AfterValidator(_existing_file)]
NonEmptyStr = Annotated[str, AfterValidator(_non_empty)]
PluginName = Annotated[str, AfterValidator(_plugin_name)]


class _Model(BaseModel):
    # Unknown keys are errors: a misspelt option must not be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------
# The models.


class RestartPolicy(_Model):
    """When a plugin that stopped is started again, and how long to wait first."""

    mode: Literal["never", "on-failure", "always"] = "on-failure"
    max_restarts: int = Field(default=5, ge=0)  # within one run of the manager; 0 = never restart
    backoff_initial: float = Field(default=1.0, gt=0.0)  # seconds before the first restart
    backoff_max: float = Field(default=30.0, gt=0.0)  # the delay doubles up to this
    jitter: float = Field(default=0.1, ge=0.0, le=1.0)  # +/- this fraction, so restarts spread out

    @model_validator(mode="after")
    def _backoff_order(self) -> RestartPolicy:
        if self.backoff_max < self.backoff_initial:
            raise _Problems(
                [
                    Problem(
                        ("backoff_max",),
                        self.backoff_max,
                        f"a number >= backoff_initial ({self.backoff_initial:g})",
                    )
                ]
            )
        return self

    def delay(self, restart: int, random: float = 0.5) -> float:
        """Seconds to wait before restart number `restart` (0 = the first).

        `random` is a number in [0, 1) (e.g. `random.random()`); 0.5 means no jitter, so
        the function stays pure and testable.
        """
        base = min(self.backoff_max, self.backoff_initial * 2.0 ** min(restart, 64))
        return base * (1.0 + self.jitter * (2.0 * random - 1.0))


class HandshakeSettings(_Model):
    """The magic cookie and app protocol version host and plugin agree on (go-plugin's
    HandshakeConfig). Needed to start a plugin from the configuration alone (`tether run`)."""

    magic_cookie_key: Annotated[str, AfterValidator(_env_name)]
    magic_cookie_value: NonEmptyStr
    protocol_version: int = Field(default=1, ge=1)

    def to_handshake(self) -> HandshakeConfig:
        return HandshakeConfig(
            protocol_version=self.protocol_version,
            magic_cookie_key=self.magic_cookie_key,
            magic_cookie_value=self.magic_cookie_value,
        )


class HealthSettings(_Model):
    """The health monitor: every `interval` seconds each instance is pinged; an instance that
    does not answer within `timeout` for `failures` checks in a row is killed and restarted
    under the restart policy."""

    interval: float = Field(default=10.0, gt=0.0)
    timeout: float = Field(default=5.0, gt=0.0)
    failures: int = Field(default=3, ge=1)


class PluginSettings(_Model):
    """How to run one plugin: exactly one of `command` and `entry_point`."""

    command: list[NonEmptyStr] | None = Field(
        default=None, min_length=1
    )  # argv, not a shell string
    entry_point: Annotated[str, AfterValidator(_entry_point)] | None = None
    protocol: Literal["tether", "grpc"] = "tether"
    enabled: bool = True
    instances: int = Field(default=1, ge=1)
    # How calls are spread over the instances.
    balance: Literal["round-robin", "least-outstanding"] = "round-robin"
    start_timeout: float = Field(default=60.0, gt=0.0)
    call_timeout: float | None = Field(default=None, gt=0.0)  # seconds; None = no limit
    restart: RestartPolicy = Field(default_factory=RestartPolicy)
    health: HealthSettings = Field(default_factory=HealthSettings)
    # Overrides the top-level handshake for this plugin.
    handshake: HandshakeSettings | None = None
    # pip requirements for the plugin's own virtual environment (`tether install`); local
    # paths are relative to `cwd`. Empty: the plugin runs with the command as given.
    requirements: list[NonEmptyStr] = Field(default_factory=list)
    # Host variables the plugin inherits (names or globs); ["*"] passes everything.
    env_allow: list[Annotated[str, AfterValidator(_env_pattern)]] = Field(
        default_factory=lambda: list(DEFAULT_ENV_ALLOW)
    )
    # Variables set for the plugin, on top of the allowed ones.
    env: dict[Annotated[str, AfterValidator(_env_name)], str] = Field(default_factory=dict)
    # Passed to the plugin's `initialize`.
    config: dict[str, Any] = Field(default_factory=dict)
    # sha256 of the verified file (see `verified_file`), checked before every start.
    checksum: Annotated[str, AfterValidator(_checksum)] | None = None
    # The file checksums and signatures cover; default: the command's executable. Set it
    # to the script for interpreted plugins (`[python, plugin.py]` -> `plugin.py`).
    verify_path: ConfigPath | None = None
    # The plugin's working directory; default: the configuration file's directory.
    cwd: ConfigPath | None = Field(default=None, validate_default=True)

    @field_validator("cwd", mode="after")
    @classmethod
    def _default_cwd(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            base = (info.context or {}).get("base_dir")
            return Path(base) if base is not None else None
        return value

    @model_validator(mode="after")
    def _one_way_to_start(self) -> PluginSettings:
        if self.command is None and self.entry_point is None:
            raise _Problems(
                [
                    Problem(
                        ("command",),
                        MISSING,
                        "either command (a list: the program and its arguments) or "
                        "entry_point ('package.module:object')",
                    )
                ]
            )
        if self.command is not None and self.entry_point is not None:
            raise _Problems(
                [
                    Problem(
                        ("entry_point",),
                        self.entry_point,
                        "no entry_point when command is set (a plugin is started one way)",
                    )
                ]
            )
        return self

    def environment(self, host_env: Mapping[str, str]) -> dict[str, str]:
        """The plugin's environment: allowed host variables, then `env` on top."""
        out = {
            key: value
            for key, value in host_env.items()
            if any(fnmatch.fnmatchcase(key, pattern) for pattern in self.env_allow)
        }
        out.update(self.env)
        return out

    def verified_file(self, path_env: str | None = None) -> Path | None:
        """The file checksums and signatures cover, or None for entry-point plugins without
        `verify_path`. A bare command name is looked up on `path_env` (PATH syntax)."""
        if self.verify_path is not None:
            return self.verify_path
        if self.command is None:
            return None
        exe = self.command[0]
        if os.sep not in exe:
            found = shutil.which(exe, path=path_env)
            return Path(found) if found else None
        path = Path(exe)
        return path if path.is_absolute() or self.cwd is None else self.cwd / path


class DiscoverySettings(_Model):
    """Where the manager looks for plugins besides those listed under `plugins`."""

    paths: list[ConfigPath] = Field(default_factory=list)
    # Globs matched inside each path; each match is a plugin manifest.
    patterns: list[NonEmptyStr] = Field(default_factory=lambda: ["*/tether.toml"])
    entry_points: bool = True
    entry_point_group: NonEmptyStr = DEFAULT_ENTRY_POINT_GROUP
    auto_scan: bool = False
    scan_interval: float = Field(default=30.0, gt=0.0)  # seconds, when polling
    # Watch the paths for changes (inotify and friends) where the platform allows; the
    # interval is then only the fallback.
    watch: bool = True


class TLSFiles(_Model):
    """Certificates for plugin connections, instead of AutoMTLS's generated ones."""

    cert_file: ExistingFile
    key_file: ExistingFile
    ca_file: ExistingFile | None = None


class SecuritySettings(_Model):
    """What is checked before a plugin is executed and how connections are protected."""

    auto_mtls: bool = False
    tls: TLSFiles | None = None
    require_checksum: bool = False
    require_signature: bool = False
    trusted_keys: list[Annotated[str, AfterValidator(_public_key)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> SecuritySettings:
        problems: list[Problem] = []
        if self.require_signature and not self.trusted_keys:
            problems.append(
                Problem(
                    ("trusted_keys",),
                    [],
                    "at least one key when require_signature is true "
                    "(add the output of `tether keygen`)",
                )
            )
        if self.auto_mtls and self.tls is not None:
            problems.append(
                Problem(
                    ("auto_mtls",),
                    True,
                    "false when tls files are given (use one or the other)",
                )
            )
        if problems:
            raise _Problems(problems)
        return self


class CalculatorSettings(_Model):
    """The tutorial calculator's own settings (its `calculator:` block)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    precision: int = Field(default=15, ge=0, le=17)  # decimal digits results are rounded to
    max_value: float = Field(default=1e100, gt=0.0)  # inputs with a larger magnitude are rejected
    angle_unit: Literal["radians", "degrees"] = "radians"
    cache_size: int = Field(default=1000, ge=0)  # results remembered; 0 turns the cache off


class ManagerConfig(_Model):
    """The whole configuration file."""

    version: Literal[1] = 1
    # The default handshake of every plugin (a plugin's own `handshake` overrides it).
    handshake: HandshakeSettings | None = None
    discovery: DiscoverySettings = Field(default_factory=DiscoverySettings)
    plugins: dict[PluginName, PluginSettings] = Field(default_factory=dict)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    # Where `tether install` puts per-plugin virtual environments; default:
    # $TETHER_HOME/envs, else ~/.local/share/tether/envs.
    environments_dir: ConfigPath | None = None
    calculator: CalculatorSettings | None = None

    def plugin_config(self, name: str) -> dict[str, Any]:
        """What the manager passes to plugin `name`'s `initialize`: its `config`, and for
        the plugin called `calculator`, the top-level `calculator:` block under it."""
        settings = self.plugins.get(name)
        out: dict[str, Any] = {}
        if name == "calculator" and self.calculator is not None:
            out.update(self.calculator.model_dump(mode="json"))
        if settings is not None:
            out.update(settings.config)
        return out

    @model_validator(mode="after")
    def _checksums_present(self) -> ManagerConfig:
        if not self.security.require_checksum:
            return self
        problems = [
            Problem(
                ("plugins", name, "checksum"),
                MISSING,
                "a sha256 digest, because security.require_checksum is true "
                "(compute it with `sha256sum`)",
            )
            for name, plugin in self.plugins.items()
            if plugin.enabled
            and plugin.checksum is None
            and (plugin.command is not None or plugin.verify_path is not None)
        ]
        if problems:
            raise _Problems(problems)
        return self


# --------------------------------------------------------------------------------------
# Environment variable expansion.

_VARIABLE = re.compile(r"\$\$|\$\{([^}]*)\}")
_REFERENCE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?\Z", re.DOTALL)


def expand_env(text: str, environ: Mapping[str, str]) -> str:
    """`text` with `${VAR}`, `${VAR:-default}` and `$$` expanded; ValueError if it cannot be."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        ref = _REFERENCE.match(match.group(1))
        if ref is None:
            raise ValueError(
                f"${{NAME}} or ${{NAME:-default}} (a variable name in {match.group(0)!r})"
            )
        name, default = ref.group(1), ref.group(2)
        value = environ.get(name)
        if default is not None:
            return value if value else default
        if value is None:
            raise ValueError(
                f"environment variable {name} to be set (or a default: ${{{name}:-value}})"
            )
        return value

    return _VARIABLE.sub(substitute, text)


def _expand_tree(
    data: Any, environ: Mapping[str, str], path: tuple[str | int, ...], problems: list[Problem]
) -> Any:
    if isinstance(data, str):
        try:
            return expand_env(data, environ)
        except ValueError as exc:
            problems.append(Problem(path, data, str(exc)))
            return data
    if isinstance(data, list):
        return [_expand_tree(v, environ, (*path, i), problems) for i, v in enumerate(data)]
    if isinstance(data, dict):
        out: dict[Any, Any] = {}
        for key, value in data.items():
            if not isinstance(key, str):
                continue  # reported with its line while the YAML nodes were walked
            out[key] = _expand_tree(value, environ, (*path, key), problems)
        return out
    return data


# --------------------------------------------------------------------------------------
# YAML with line numbers.


_STR_TAG = "tag:yaml.org,2002:str"


def _walk_nodes(
    node: yaml.Node,
    path: tuple[str | int, ...],
    lines: dict[tuple[str | int, ...], int],
    problems: list[Problem],
    active: set[int],
) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if id(node) in active:  # a recursive alias; the constructor reports nothing for it
        return
    active.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key_node.tag != _STR_TAG:
                # YAML 1.1 reads `on:`/`yes:` as booleans and `1:` as an integer.
                problems.append(
                    Problem((*path, key), key, "a string key (quote it: 'on', '1')", line)
                )
                continue
            if key in seen:
                problems.append(
                    Problem(
                        (*path, key),
                        key,
                        f"each key once (already given on line {seen[key]})",
                        line,
                    )
                )
            seen[key] = line
            lines.setdefault((*path, key), line)
            _walk_nodes(value_node, (*path, key), lines, problems, active)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk_nodes(item, (*path, i), lines, problems, active)
    active.discard(id(node))


def _parse_yaml(
    text: str, source: str
) -> tuple[Any, dict[tuple[str | int, ...], int], list[Problem]]:
    """The document, the line of every path in it, and duplicate-key problems."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[tuple[str | int, ...], int] = {}
        problems: list[Problem] = []
        if node is None:
            return None, lines, problems
        # Walk before constructing: construction flattens merge keys in place.
        _walk_nodes(node, (), lines, problems, set())
        return loader.construct_document(node), lines, problems
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}" if mark is not None else source
        raise ConfigError(f"{where}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()


def load_config(
    path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
) -> ManagerConfig:
    """Read, expand and validate a YAML configuration file.

    Raises `ConfigFileError` (a `ConfigError`) listing every problem, or `ConfigError` when
    the file cannot be read or is not YAML. `environ` defaults to `os.environ`.
    """
    file = Path(path)
    source = str(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {source}: {exc}") from exc
    data, lines, problems = _parse_yaml(text, source)
    if data is None:
        data = {}  # an empty file is the all-defaults configuration
    if not isinstance(data, dict):
        problems.append(Problem((), data, "a mapping at the top level", 1))
        raise ConfigFileError(source, problems)
    expansion: list[Problem] = []
    data = _expand_tree(data, os.environ if environ is None else environ, (), expansion)
    problems.extend(_with_line(p, lines) for p in expansion)
    try:
        config = ManagerConfig.model_validate(data, context={"base_dir": file.parent.absolute()})
    except ValidationError as exc:
        problems.extend(problems_from_validation(exc, ManagerConfig, lines, data))
        config = None
    if problems:
        raise ConfigFileError(source, _dedupe(problems))
    assert config is not None
    return config


def _as_written(problem: Problem, data: Any) -> Problem:
    """`problem` showing the value as the file has it (cross-field rules see it converted:
    `5` becomes `5.0`)."""
    if problem.value is MISSING or problem.text is not None:
        return problem
    value = data
    for part in problem.path:
        in_dict = isinstance(value, dict) and part in value
        in_list = isinstance(value, list) and isinstance(part, int) and part < len(value)
        if not (in_dict or in_list):
            return problem
        value = value[part]
    return Problem(problem.path, value, problem.expected, problem.line, problem.text)


def _dedupe(problems: Sequence[Problem]) -> list[Problem]:
    # An unset variable is reported by expansion; validation may then report the same
    # field again for its unexpanded text. Keep the first report of each field.
    seen: set[tuple[str | int, ...]] = set()
    out: list[Problem] = []
    for problem in sorted(problems, key=lambda p: p.line if p.line is not None else math.inf):
        if problem.path not in seen:
            out.append(problem)
        seen.add(problem.path)
    return out
