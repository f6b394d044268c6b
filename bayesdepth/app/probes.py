"""Function-space quantities to judge a neural network's chains by: predictions at probe inputs.

A network's weights are not identifiable (hidden units permute, signs flip), so their R-hat stays
large even when the chains agree on the function; the predictions at a few inputs are what
convergence is judged on (Vehtari et al. 2021 thresholds, :mod:`bayesdepth.inference.diagnostics`).
"""

from __future__ import annotations

import torch

__all__ = ["PROBE_COUNT", "PROBE_NAMES", "at_probes", "probe_inputs"]

#: probe inputs per run
PROBE_COUNT = 5
#: the posterior variables :func:`at_probes` adds (regression, classification)
PROBE_NAMES = ("f_probe", "p_probe")


def probe_inputs(x: torch.Tensor, count: int = PROBE_COUNT) -> torch.Tensor:
    """``count`` rows of ``x`` spread along its first feature (its 5%, 27.5%, 50%, 72.5% and 95%
    quantiles for five probes), the same rows for the same data."""
    order = x[:, 0].argsort(stable=True)
    where = torch.linspace(0.05, 0.95, count) * (len(order) - 1)
    return x[order[where.round().long().to(order.device)]]


def at_probes(net, probe: torch.Tensor, chains) -> dict[str, torch.Tensor]:
    """The network's output at ``probe`` for every draw, ``(chains, draws, probes[, classes])``:
    the regression function ``f_probe``, or the class probabilities ``p_probe``."""
    samples = net.predict(probe, posterior_samples=chains).samples
    if samples.dim() == 3:  # logits: softmax to identifiable probabilities
        name, samples = PROBE_NAMES[1], samples.softmax(-1)
    else:
        name = PROBE_NAMES[0]
    return {name: samples.reshape(chains.num_chains, chains.num_draws, *samples.shape[1:]).cpu()}
