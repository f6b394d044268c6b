"""The ``bayesdepth`` command line (the app floor: it uses the models and ``bayesdepth.inference``;
neither imports it).

- :mod:`.cli`: flags, ``--config`` files, exit statuses; :mod:`.commands`: one function per
  subcommand; :mod:`.recipes`: the default models, samplers and their names;
  :mod:`.problems` and :mod:`.tabular`: embedded data sets and CSV files; :mod:`.runs`: output
  folders and devices; :mod:`.outputs`: JSON and ArviZ files; :mod:`.demo` and :mod:`.report`:
  the end-to-end demo and its HTML page.
"""

from .cli import main

__all__ = ["main"]
