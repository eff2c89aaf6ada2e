"""Placeholder: result tables and tests (issue 2, in progress)."""


class LRTestResult:
    pass


def _todo(*args, **kwargs):
    raise NotImplementedError("being written")


fixed_effects = random_effects = summary = vpc = lr_test = _todo
compare_models = group_effects = effective_sample_size = _todo
