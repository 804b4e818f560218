"""The optional C extension; everything else is in pyproject.toml."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class AtomicBuildExt(build_ext):
    """Puts a built extension in place by renaming a copy over it.

    An editable install (`pip install -e .`, which `tether install` repeats for plugin
    environments of an editable tether) copies the library into the source tree. A plain
    copy rewrites the file that running hosts and plugins have mapped, and they crash; a
    rename leaves them the old file.
    """

    def copy_file(self, infile: Any, outfile: Any, *args: Any, **kwargs: Any) -> Any:
        if not str(outfile).endswith((".so", ".pyd")):
            return super().copy_file(infile, outfile, *args, **kwargs)
        directory = os.path.dirname(os.path.abspath(outfile))
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=".so")
        os.close(fd)
        try:
            shutil.copyfile(infile, temporary)
            shutil.copymode(infile, temporary)
            os.replace(temporary, outfile)
        except BaseException:
            os.unlink(temporary)
            raise
        return (outfile, True)


setup(
    cmdclass={"build_ext": AtomicBuildExt},
    ext_modules=[
        # optional: without a compiler or Python's headers tether installs and runs without
        # it (the same protocol, a few microseconds more per call).
        Extension(
            "tether._speedups",
            ["src/tether/_speedups.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ],
)
