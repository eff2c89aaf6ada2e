"""Response families and links of the generalised linear mixed models, as lme4 has them.

Each :class:`Family` gives what penalised iteratively reweighted least
squares (PIRLS) and the Laplace approximation need: the inverse link and
its derivative, the variance function, the deviance residuals, the
log-likelihood part of lme4's ``aic()`` (minus twice the log-probability of
the data) and R's starting values (``mustart``).  The numbers follow lme4's
C++ (``glmFamily.cpp``): the inverse links are kept a machine epsilon away
from 0 and 1 (logit, cloglog, log), as lme4 keeps them.

* binomial: links ``logit`` (the default), ``probit``, ``cloglog``; the
  response is a proportion ``y`` with ``n`` trials (0/1 outcomes: ``n = 1``;
  ``cbind(successes, failures)``: ``y = s / (s + f)``, ``n = s + f``);
* poisson: link ``log``; the response is a count.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats

EPS = np.finfo(float).eps


class Link:
    """A link function: ``eta = linkfun(mu)``, ``mu = linkinv(eta)``, ``mu_eta = dmu/deta``."""

    name = ""

    def linkfun(self, mu):  # pragma: no cover - abstract
        raise NotImplementedError

    def linkinv(self, eta):  # pragma: no cover - abstract
        raise NotImplementedError

    def mu_eta(self, eta):  # pragma: no cover - abstract
        raise NotImplementedError


class Logit(Link):
    name = "logit"

    def linkfun(self, mu):
        return special.logit(mu)

    def linkinv(self, eta):
        return np.clip(special.expit(eta), EPS, 1.0 - EPS)

    def mu_eta(self, eta):
        e = np.exp(-np.abs(eta))
        return np.maximum(EPS, e / (1.0 + e) ** 2)


class Probit(Link):
    name = "probit"

    def linkfun(self, mu):
        return special.ndtri(mu)

    def linkinv(self, eta):
        return np.minimum(1.0 - EPS, special.ndtr(eta))

    def mu_eta(self, eta):
        return stats.norm.pdf(eta)


class Cloglog(Link):
    name = "cloglog"

    def linkfun(self, mu):
        return np.log(-np.log1p(-mu))

    def linkinv(self, eta):
        return np.clip(-np.expm1(-np.exp(eta)), EPS, 1.0 - EPS)

    def mu_eta(self, eta):
        return np.maximum(EPS, np.exp(eta - np.exp(eta)))


class Log(Link):
    name = "log"

    def linkfun(self, mu):
        return np.log(mu)

    def linkinv(self, eta):
        return np.maximum(EPS, np.exp(eta))

    def mu_eta(self, eta):
        return np.maximum(EPS, np.exp(eta))


LINKS = {"logit": Logit, "probit": Probit, "cloglog": Cloglog, "log": Log}


def _ylogy(y, mu):
    """y log(y / mu), 0 where y is 0 (lme4's ``Y_log_Y``)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = y * np.log(np.where(y > 0, y / mu, 1.0))
    return np.where(y > 0, out, 0.0)


class Family:
    """A response distribution with its link."""

    name = ""
    links = ()
    default_link = ""

    def __init__(self, link=None):
        link = link or self.default_link
        if link not in self.links:
            raise ValueError(
                f"the {self.name} family takes the link {' or '.join(map(repr, self.links))}, "
                f"not {link!r}.")
        self.link = LINKS[link]()

    def __repr__(self):
        return f"{self.name} ( {self.link.name} )"

    def linkinv(self, eta):
        return self.link.linkinv(eta)

    def mu_eta(self, eta):
        return self.link.mu_eta(eta)


class Binomial(Family):
    """Proportions ``y`` out of ``n`` trials; prior weights ``w`` (``n`` for counts)."""

    name = "binomial"
    links = ("logit", "probit", "cloglog")
    default_link = "logit"

    def variance(self, mu):
        return np.maximum(EPS, mu * (1.0 - mu))

    def dev_resid(self, y, mu, wt):
        return 2.0 * wt * (_ylogy(y, mu) + _ylogy(1.0 - y, 1.0 - mu))

    def loglik(self, y, n, mu, wt):
        """The log-probability of every observation (lme4's ``aic()`` is -2 x the sum)."""
        if np.all(n == 1) and np.all(wt == 1):   # 0/1 outcomes: the Bernoulli formula
            with np.errstate(divide="ignore", invalid="ignore"):
                out = np.where(y > 0, np.log(mu), np.log1p(-mu))
            return np.where(mu == y, 0.0, out)
        m = n if np.any(n > 1) else wt
        yy = np.rint(m * y)
        m = np.rint(m)
        with np.errstate(divide="ignore", invalid="ignore"):
            lp = stats.binom.logpmf(yy, m, mu)
            factor = np.where(m > 0, wt / np.where(m > 0, m, 1.0), 0.0)
        return np.where(m > 0, factor * lp, 0.0)

    def mustart(self, y, wt):
        return (wt * y + 0.5) / (wt + 1.0)


class Poisson(Family):
    """Counts ``y``; prior weights ``w``."""

    name = "poisson"
    links = ("log",)
    default_link = "log"

    def variance(self, mu):
        return mu

    def dev_resid(self, y, mu, wt):
        return 2.0 * wt * (_ylogy(y, mu) - (y - mu))

    def loglik(self, y, n, mu, wt):
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.where(y > 0, y * np.log(mu), 0.0) - mu - special.gammaln(y + 1.0)
        return wt * out

    def mustart(self, y, wt):
        return y + 0.1


FAMILIES = {"binomial": Binomial, "poisson": Poisson}


def make_family(func, family, link=None):
    """The Family for ``family`` ("binomial" or "poisson") and ``link``: a clear error else."""
    if isinstance(family, Family):
        return family
    if not isinstance(family, str) or family.lower() not in FAMILIES:
        raise ValueError(
            f"{func}: family={family!r} is not one of the families fitted here: 'binomial' "
            "(0/1 outcomes, or cbind(successes, failures) counts; links 'logit', 'probit', "
            "'cloglog') and 'poisson' (counts; link 'log'). A continuous outcome is "
            "fitted with fit_mixedlm().")
    try:
        return FAMILIES[family.lower()](link)
    except ValueError as exc:
        raise ValueError(f"{func}: {exc}") from None
