"""The `tether` command: inspect, call, run and watch plugins from a shell.

Each command group lives in its own module; heavy imports (rich, the manager, pydantic)
happen inside the commands so `tether --help` and `tether --version` stay fast.
See docs/CLI.md.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Sequence

import click

from .. import __version__
from . import _keys, _manage, _plugins
from ._app import EXIT_ERROR, EXIT_USAGE, STATE, common_options

__all__ = ["cli", "main"]


class _Group(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        # The order a new user meets them in, not alphabetical.
        return list(self.commands)


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "--version", message="tether %(version)s")
@common_options
def cli() -> None:
    """Out-of-process plugins, wire-compatible with HashiCorp go-plugin.

    Commands read the configuration file (see --config) unless they say otherwise.
    Exit codes: 0 ok, 1 error, 2 usage error, 3 `status`: no `tether run` is running.
    """


for command in (
    _plugins.list_cmd,
    _plugins.inspect_cmd,
    _plugins.call_cmd,
    _manage.status_cmd,
    _manage.health_cmd,
    _manage.run_cmd,
    _manage.install_cmd,
    _keys.keygen_cmd,
    _keys.sign_cmd,
    _keys.verify_cmd,
    _keys.handshake_cmd,
    _manage.demo_cmd,
):
    cli.add_command(command)


def error_text(exc: BaseException) -> str:
    """`tether: error: ...`: the first line of the message, further lines indented."""
    from .._errors import TetherError

    message = str(exc) or type(exc).__name__
    if not isinstance(exc, TetherError | OSError):
        message = f"{type(exc).__name__}: {message}"
    first, _, rest = message.partition("\n")
    text = f"tether: error: {first}"
    if rest:
        text += "\n" + "\n".join(f"  {line}" for line in rest.splitlines())
    return text


def _configure_logging(debug: bool) -> None:
    import logging

    # Plugins' stderr lines arrive as log records (tether.plugin.NAME); a user wants their
    # warnings and errors, and everything with --debug.
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(name)s: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    STATE.config, STATE.json, STATE.debug = None, False, "--debug" in args
    _configure_logging(STATE.debug)
    if not args:
        click.echo(cli.get_help(click.Context(cli, info_name="tether")))
        return EXIT_USAGE
    try:
        result = cli.main(args, prog_name="tether", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        click.echo("tether: interrupted", err=True)
        return 130
    except BrokenPipeError:
        return EXIT_ERROR
    except Exception as exc:
        if STATE.debug:
            traceback.print_exc()
        click.echo(error_text(exc), err=True)
        return EXIT_ERROR
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
