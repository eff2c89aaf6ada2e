"""mlmhelpers: the helper library of the course "Introduction to Multilevel Modelling".

A layer over numpy, scipy and statsmodels that fits multilevel models the way
R's lme4 does (``lmer`` and ``glmer``) and prints them in a form students can
hold beside R output.
"""

import importlib as _importlib

# Names are imported on first use (PEP 562), so `import mlmhelpers.practice` in a
# practical's check cell, or the grader's clean test process, does not pay for
# statsmodels and matplotlib.  `from mlmhelpers import *` and tab completion still
# see every name.
_LAZY = {
    "data_dir": "data",
    "dataset_names": "data",
    "load_dataset": "data",
    "ColumnNotFoundError": "linear",
    "SingularFitWarning": "linear",
    "ConvergenceWarning": "linear",
    "fit_mixedlm": "linear",
    "from_statsmodels": "linear",
    "LinearMixedResults": "results",
    "MixedResults": "results",
    "format_p": "_format",
    "LRTestResult": "tables",
    "compare_models": "tables",
    "effective_sample_size": "tables",
    "fixed_effects": "tables",
    "group_effects": "tables",
    "lr_test": "tables",
    "random_effects": "tables",
    "summary": "tables",
    "vpc": "tables",
    "plot_caterpillar": "plots",
    "plot_group_lines": "plots",
    "plot_residuals": "plots",
    "LogitMixedResults": "binary",
    "fit_logit_mixed": "binary",
    "fit_glmm": "glmm",
    "GlmmResults": "glmm",
    "rate_ratios": "glmm",
    "overdispersion": "glmm",
    "odds_ratios": "binary",
    "plot_coefficients": "binary",
    "plot_classification": "diagrams",
    "plot_hierarchy": "diagrams",
    "plot_groups": "widgets",
    "population_vpc": "widgets",
    "simulate_groups": "widgets",
    "variance_explorer": "widgets",
    "confint": "uncertainty",
    "vpc_confint": "uncertainty",
    "simulate": "uncertainty",
    "bootstrap": "uncertainty",
    "bootstrap_lr_test": "uncertainty",
    "BootstrapResult": "uncertainty",
    "BootstrapLRTest": "uncertainty",
    "PALETTE": "style",
    "use_course_style": "style",
}


__version__ = "0.1.0"

__all__ = [
    "load_dataset",
    "dataset_names",
    "data_dir",
    "fit_mixedlm",
    "LinearMixedResults",
    "MixedResults",
    "SingularFitWarning",
    "ConvergenceWarning",
    "ColumnNotFoundError",
    "from_statsmodels",
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
    "confint",
    "vpc_confint",
    "simulate",
    "bootstrap",
    "bootstrap_lr_test",
    "BootstrapResult",
    "BootstrapLRTest",
    "plot_caterpillar",
    "plot_group_lines",
    "plot_residuals",
    "fit_logit_mixed",
    "LogitMixedResults",
    "fit_glmm",
    "GlmmResults",
    "rate_ratios",
    "overdispersion",
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


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mlmhelpers' has no attribute {name!r}")
    value = getattr(_importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
