"""ELBO gradient estimators: sticking the landing (STL), KL-only, and the choice between them.

- :class:`STLTrace_ELBO` (the default of :func:`bayesdepth.fit`): Pyro's ``Trace_ELBO`` without the
  score term, so its gradient variance vanishes at the exact posterior.
- :class:`KLOnlyTrace_ELBO`: at weight-path sites, the KL-only estimator
  ``sum_k 1/2 |u_k|^2 dt_k`` in place of the log-density ratio (docs/theory.md §8).
- :func:`make_elbo`: the ELBO for an estimator name (``"stl"``, ``"reparam"``, ``"kl"``).

**Sticking the landing** (docs/theory.md §9.1-§9.3). Roeder, Wu, Duvenaud, "Sticking the Landing:
Simple, Lower-Variance Gradient Estimators for Variational Inference" (NeurIPS 2017).

With a reparameterised guide sample ``z = z(phi, eps)`` the total derivative of the ELBO splits as

    d/dphi [log p(x, z) - log q_phi(z)]
        = [d/dz (log p(x, z) - log q_phi(z))] dz/dphi   (path derivative)
          - d/dphi log q_phi(z) |_{z fixed}              (score term)

The score term has expectation zero but not variance zero. When ``q`` equals the exact
posterior, ``log p(x, z) - log q(z) = log p(x)`` for every ``z``, so the path derivative vanishes
sample by sample and the STL estimator -- the path derivative alone -- has zero variance.

Pyro's :class:`~pyro.infer.Trace_ELBO` keeps the score term of reparameterised sites. This class
removes it: it re-runs the guide with every sample site replayed at its *detached* value, sums the
log densities of the reparameterised sites of that re-run, and adds ``s - s.detach()`` to the
surrogate ELBO, which cancels exactly the score term and leaves the loss value unchanged.
Detaching the values (not only the parameters) keeps the estimator right for hierarchical guides
(a site whose distribution depends on an upstream latent), amortised guides and guides whose
parameters live in ``nn.Module``s. Sites that are not reparameterised keep Pyro's treatment.
"""

from __future__ import annotations

import torch
from pyro import poutine
from pyro.distributions.util import is_identically_zero
from pyro.infer import ELBO, Trace_ELBO
from pyro.poutine.util import site_is_subsample

from ._validation import check_choice, check_positive_int

__all__ = ["ESTIMATORS", "KLOnlyTrace_ELBO", "STLTrace_ELBO", "make_elbo"]

#: estimator names accepted by :func:`make_elbo` (and ``bayesdepth fit --estimator``)
ESTIMATORS = ("stl", "reparam", "kl")

_NODE = "_stl_fixed_value_log_q"


def _reparameterised_sites(guide_trace) -> list[str]:
    names = []
    for name, site in guide_trace.nodes.items():
        if site["type"] != "sample" or site["is_observed"] or site_is_subsample(site):
            continue
        if is_identically_zero(site["score_parts"].score_function):
            names.append(name)
    return names


def _detached_copy(guide_trace) -> poutine.Trace:
    """A trace holding every sample site of ``guide_trace`` with its value detached."""
    frozen = poutine.Trace()
    for name, site in guide_trace.nodes.items():
        if site["type"] == "sample":
            frozen.add_node(name, **{**site, "value": site["value"].detach()})
    return frozen


class _CheckedTrace_ELBO(Trace_ELBO):
    """``Trace_ELBO`` whose particle count is checked (Pyro accepts 0 and returns a loss of 0)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        check_positive_int("num_particles", self.num_particles)


class STLTrace_ELBO(_CheckedTrace_ELBO):
    """``Trace_ELBO`` whose gradient keeps only the path derivative of reparameterised sites.

    The loss value is the same as :class:`~pyro.infer.Trace_ELBO`'s on the same random draw;
    only the gradient changes. Works with ``num_particles > 1`` (looped or
    ``vectorize_particles=True``), autoguides, hand-written and amortised guides, and
    :class:`~pyro.infer.SVI`. Costs one extra forward pass of the guide per particle.

    Example:
        >>> svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 1e-2}), STLTrace_ELBO())
    """

    def _get_trace(self, model, guide, args, kwargs):
        model_trace, guide_trace = super()._get_trace(model, guide, args, kwargs)
        names = _reparameterised_sites(guide_trace)
        if names:
            replayed = poutine.replay(guide, trace=_detached_copy(guide_trace))
            rerun = poutine.trace(replayed).get_trace(*args, **kwargs)
            rerun.compute_log_prob(site_filter=lambda name, site: name in names)
            fixed_value_log_q = sum(rerun.nodes[name]["log_prob_sum"] for name in names)
            guide_trace.add_node(_NODE, type="stl_score_term", value=fixed_value_log_q)
        return model_trace, guide_trace

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        loss, surrogate_loss = super()._differentiable_loss_particle(model_trace, guide_trace)
        if _NODE in guide_trace.nodes:
            score = guide_trace.nodes[_NODE]["value"]
            surrogate_loss = surrogate_loss - (score - score.detach())
        return loss, surrogate_loss


class KLOnlyTrace_ELBO(_CheckedTrace_ELBO):
    """``Trace_ELBO`` with the KL-only estimator at weight-path sites.

    At every sample site whose guide distribution offers ``kl_only(prior, value)`` (an
    :class:`~bayesdepth.sde.EulerPath`) and whose model distribution is of the same type, the term
    ``log p(path) - log q(path)`` is replaced by ``-sum_k 1/2 |u_k|^2 dt_k`` (times the site's
    scale): the discrete Girsanov sum without its zero-mean martingale part, which is what
    ``torchsde.sdeint(..., logqp=True)`` integrates (docs/theory.md §8). Other sites keep
    ``Trace_ELBO``'s treatment.
    """

    def loss(self, model, guide, *args, **kwargs) -> float:
        """The KL-only loss value (``Trace_ELBO.loss`` would give the plain estimate)."""
        with torch.no_grad():
            return float(self.differentiable_loss(model, guide, *args, **kwargs))

    def _differentiable_loss_particle(self, model_trace, guide_trace):
        loss, surrogate = super()._differentiable_loss_particle(model_trace, guide_trace)
        for name, site in guide_trace.nodes.items():
            if site["type"] != "sample" or not callable(getattr(site["fn"], "kl_only", None)):
                continue
            model_site = model_trace.nodes.get(name)
            if model_site is None or type(model_site["fn"]) is not type(site["fn"]):
                continue
            log_ratio = model_site["log_prob_sum"] - site["log_prob_sum"]
            kl = (site["fn"].kl_only(model_site["fn"], site["value"]) * site["scale"]).sum()
            correction = log_ratio + kl
            loss = loss + float(correction)
            surrogate = surrogate + correction
        return loss, surrogate


def make_elbo(
    estimator: str | ELBO = "stl",
    num_particles: int = 1,
    vectorize_particles: bool = False,
    max_plate_nesting: int | None = None,
) -> ELBO:
    """The ELBO object for an estimator name; an ``ELBO`` instance is returned unchanged.

    ``"stl"``: :class:`STLTrace_ELBO`; ``"reparam"``: Pyro's ``Trace_ELBO`` (path derivative plus
    score term); ``"kl"``: :class:`KLOnlyTrace_ELBO`. ``max_plate_nesting``: the model's plate
    depth when known (None: Pyro guesses it by running the model once).
    """
    if isinstance(estimator, ELBO):
        return estimator
    check_choice("estimator", estimator, ESTIMATORS)
    num_particles = check_positive_int("num_particles", num_particles)
    if not isinstance(vectorize_particles, bool):
        raise TypeError(f"vectorize_particles must be True or False, got {vectorize_particles!r}")
    cls = {"stl": STLTrace_ELBO, "reparam": Trace_ELBO, "kl": KLOnlyTrace_ELBO}[estimator]
    nesting = {} if max_plate_nesting is None else {
        "max_plate_nesting": check_positive_int("max_plate_nesting", max_plate_nesting, 0)}
    return cls(num_particles=num_particles, vectorize_particles=vectorize_particles, **nesting)
