"""The optional C extension; everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        # optional: without a compiler or Python's headers tether installs and runs without
        # it (the same protocol, a few microseconds more per call).
        Extension(
            "tether._speedups",
            ["src/tether/_speedups.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
