"""Benchmarks of methods on data sets: grids of runs (:mod:`.grid`), running them and writing the report
(:mod:`.run`, the only part that trains), the tables (:mod:`.tables`, also read by the HTML report), and benches in
parts or written again (:mod:`.collect`)."""

from .collect import collect, render, render_plan
from .grid import grid_settings, load_grid
from .run import run_bench, write_report
from .tables import aggregate, classifiers_used, markdown, report_tables

__all__ = ["aggregate", "classifiers_used", "collect", "grid_settings", "load_grid", "markdown", "render",
           "render_plan", "report_tables", "run_bench", "write_report"]
