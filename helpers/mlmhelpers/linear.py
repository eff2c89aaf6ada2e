"""Placeholder: linear mixed models (issue 2, in progress)."""


def fit_mixedlm(formula, data, groups, re_formula=None, reml=False):
    raise NotImplementedError("fit_mixedlm is being written")
