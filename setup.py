"""The classifier's compiled scorer (routes/_scorer.c); everything else is declared in pyproject.toml.

setup.py is setuptools' stable way to declare an extension (`[tool.setuptools.ext-modules]` is
still marked experimental). It needs Python's headers and a C compiler, no numpy headers. It is
optional: where it cannot be built, the install goes on and decisions take the Python path
(routes/_compiled.py), which gives the same scores, slower.
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("routes._scorer", ["routes/_scorer.c"], optional=True)])
