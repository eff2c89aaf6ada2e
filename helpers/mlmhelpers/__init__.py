"""mlmhelpers: the helper library of the course "Introduction to Multilevel Modelling".

A thin layer over statsmodels (and, for binary responses, numpy/scipy) that
fits two-level models the way R's lme4 does and prints them in a form
students can hold beside R output.
"""

from .data import data_dir, dataset_names, load_dataset
from .linear import ColumnNotFoundError, SingularFitWarning, fit_mixedlm
from .results import LinearMixedResults, MixedResults
from ._format import format_p
from .tables import (
    LRTestResult,
    compare_models,
    effective_sample_size,
    fixed_effects,
    group_effects,
    lr_test,
    random_effects,
    summary,
    vpc,
)
from .plots import plot_caterpillar, plot_group_lines, plot_residuals
from .binary import LogitMixedResults, fit_logit_mixed, odds_ratios, plot_coefficients
from .diagrams import plot_classification, plot_hierarchy
from .widgets import plot_groups, population_vpc, simulate_groups, variance_explorer
from .style import PALETTE, use_course_style

__version__ = "0.1.0"

__all__ = [
    "load_dataset",
    "dataset_names",
    "data_dir",
    "fit_mixedlm",
    "LinearMixedResults",
    "MixedResults",
    "SingularFitWarning",
    "ColumnNotFoundError",
    "fixed_effects",
    "random_effects",
    "summary",
    "vpc",
    "format_p",
    "lr_test",
    "LRTestResult",
    "compare_models",
    "group_effects",
    "effective_sample_size",
    "plot_caterpillar",
    "plot_group_lines",
    "plot_residuals",
    "fit_logit_mixed",
    "LogitMixedResults",
    "odds_ratios",
    "plot_coefficients",
    "plot_hierarchy",
    "plot_classification",
    "simulate_groups",
    "population_vpc",
    "plot_groups",
    "variance_explorer",
    "PALETTE",
    "use_course_style",
]
