"""The sticking-the-landing (STL) ELBO: a zero-variance gradient at the exact posterior.

Roeder, Wu, Duvenaud, "Sticking the Landing: Simple, Lower-Variance Gradient Estimators for
Variational Inference" (NeurIPS 2017).

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

from pyro import poutine
from pyro.distributions.util import is_identically_zero
from pyro.infer import Trace_ELBO
from pyro.poutine.util import site_is_subsample

__all__ = ["STLTrace_ELBO"]

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


class STLTrace_ELBO(Trace_ELBO):
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
