"""Placeholder: random-intercept logistic models (issue 3, in progress)."""


class LogitMixedResults:
    pass


def _todo(*args, **kwargs):
    raise NotImplementedError("being written")


fit_logit_mixed = odds_ratios = plot_coefficients = _todo
