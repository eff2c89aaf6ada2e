"""Placeholder: plots (issue 2, in progress)."""


def _todo(*args, **kwargs):
    raise NotImplementedError("being written")


plot_caterpillar = plot_group_lines = plot_residuals = _todo
